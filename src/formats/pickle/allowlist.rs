//! Allow-list of exact `module.qualname` globals that model pickles need.
//!
//! Owns: the decision "may the unpickler import this global?". Entries are
//! EXACT names (never whole modules): PyTorch tensor/parameter rebuild
//! functions and storage classes, TorchScript pickle helpers, NumPy array /
//! dtype / scalar reconstruction and random-generator constructors, joblib
//! array wrappers, plain-data builtins and common scikit-learn estimators
//! with their internal types. Callers extend it with
//! `ScanOptions::extra_allowed`.
//!
//! One pattern rule exists, and only for TorchScript archives:
//! [`is_torchscript_class`] (`__torch__.*` names). Inside a TorchScript
//! archive (a zip with `constants.pkl` and `code/` records, which
//! `torch.load` hands to `torch.jit.load`) those names are class references
//! that TorchScript's C++ unpickler resolves against the code compiled from
//! the archive itself. Anywhere else (a plain pickle, a `torch.save` zip, a
//! legacy file) Python's `find_class` imports them like any module: a
//! `__torch__.py` on `sys.path` runs. So [`is_allowed`] never accepts them;
//! the scanner applies the pattern only to the `data.pkl` / `constants.pkl`
//! records of a TorchScript archive.
//!
//! Spec/background: CPython `pickle.Unpickler.find_class` (and
//! `_compat_pickle` for the py2 `__builtin__`/`copy_reg` names), PyTorch
//! `torch/_weights_only_unpickler.py` (what `weights_only=True` accepts).
//!
//! Limits: allowing a class means trusting its constructor/`__setstate__`
//! with attacker data; only classes whose constructors do not run code,
//! open files or touch the network are listed. Never listed:
//! `builtins.eval/exec/getattr/__import__/open/compile/...`,
//! `torch.storage._load_from_bytes` (calls `torch.load`), anything from
//! `os`, `subprocess`, `pickle`, `runpy`, ...

use std::collections::HashSet;
use std::sync::OnceLock;

const TORCH: &[&str] = &[
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_from_type_v2",
    "torch._tensor._rebuild_from_type_v2",
    "torch.nn.parameter.Parameter",
    "torch.Size",
    "torch.device",
    "torch.Tensor",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.UntypedStorage",
    "torch.jit._pickle.build_intlist",
    "torch.jit._pickle.build_doublelist",
    "torch.jit._pickle.build_boollist",
    "torch.jit._pickle.build_tensorlist",
    "torch.jit._pickle.build_tensor_from_id",
    "torch.jit._pickle.restore_type_tag",
    "torch.float32",
    "torch.float64",
    "torch.float16",
    "torch.bfloat16",
    "torch.int64",
    "torch.int32",
    "torch.int16",
    "torch.int8",
    "torch.uint8",
    "torch.bool",
    "torch.complex64",
    "torch.complex128",
    "torch.strided",
    "torch.sparse_coo",
    "torch.per_tensor_affine",
];

const STORAGE_KINDS: &[&str] = &[
    "Float",
    "Double",
    "Half",
    "BFloat16",
    "Long",
    "Int",
    "Short",
    "Char",
    "Byte",
    "Bool",
    "ComplexFloat",
    "ComplexDouble",
    "QInt8",
    "QUInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
];

const TENSOR_KINDS: &[&str] = &["Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool"];

const NUMPY: &[&str] = &[
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.matrixlib.defmatrix.matrix",
    "numpy.ma.core._mareconstruct",
    "numpy.ma.core.MaskedArray",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    "numpy.random.mtrand._rand",
    "numpy.float64",
    "numpy.float32",
    "numpy.float16",
    "numpy.int64",
    "numpy.int32",
    "numpy.int16",
    "numpy.int8",
    "numpy.uint8",
    "numpy.uint16",
    "numpy.uint32",
    "numpy.uint64",
    "numpy.bool_",
    "numpy.complex64",
    "numpy.complex128",
    "numpy.dtypes.Float64DType",
    "numpy.dtypes.Float32DType",
    "numpy.dtypes.Int64DType",
    "numpy.dtypes.Int32DType",
    "numpy.dtypes.BoolDType",
    "numpy.dtypes.ObjectDType",
    "numpy.dtypes.StrDType",
    "numpy.dtypes.BytesDType",
];

const JOBLIB: &[&str] = &[
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "joblib.numpy_pickle.NDArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NDArrayWrapper",
];

/// Plain-data builtins, allowed under both `builtins` and py2 `__builtin__`.
const BUILTIN_TYPES: &[&str] = &[
    "set",
    "frozenset",
    "bytearray",
    "bytes",
    "slice",
    "complex",
    "list",
    "dict",
    "tuple",
    "int",
    "float",
    "bool",
    "str",
    "range",
    "object",
    "long",
    "unicode",
];

const STDLIB: &[&str] = &[
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "collections.deque",
    "__builtin__.xrange",
    "copyreg._reconstructor",
    "copy_reg._reconstructor",
    "_codecs.encode",
    "datetime.datetime",
    "datetime.date",
    "datetime.timedelta",
    "decimal.Decimal",
    "fractions.Fraction",
];

/// scikit-learn (1.x private module layout) estimators and internals.
const SKLEARN: &[&str] = &[
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._data.Normalizer",
    "sklearn.preprocessing._data.QuantileTransformer",
    "sklearn.preprocessing._data.PowerTransformer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.preprocessing._polynomial.PolynomialFeatures",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.decomposition._pca.PCA",
    "sklearn.decomposition._truncated_svd.TruncatedSVD",
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._ridge.RidgeClassifier",
    "sklearn.linear_model._coordinate_descent.Lasso",
    "sklearn.linear_model._coordinate_descent.ElasticNet",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._stochastic_gradient.SGDRegressor",
    "sklearn.linear_model._perceptron.Perceptron",
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.SVR",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.svm._classes.LinearSVR",
    "sklearn.svm._classes.NuSVC",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.naive_bayes.MultinomialNB",
    "sklearn.naive_bayes.BernoulliNB",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.cluster._kmeans.KMeans",
    "sklearn.cluster._kmeans.MiniBatchKMeans",
    "sklearn.cluster._dbscan.DBSCAN",
    "sklearn.mixture._gaussian_mixture.GaussianMixture",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn.utils._bunch.Bunch",
];

fn table() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut s: HashSet<String> = HashSet::new();
        for list in [TORCH, NUMPY, JOBLIB, STDLIB, SKLEARN] {
            s.extend(list.iter().map(|x| x.to_string()));
        }
        for k in STORAGE_KINDS {
            s.insert(format!("torch.{k}Storage"));
            s.insert(format!("torch.cuda.{k}Storage"));
        }
        // Legacy tensor type classes, named (not called) by the `tensors` record of a
        // pre-1.6 `torch.save` tar.
        for k in TENSOR_KINDS {
            s.insert(format!("torch.{k}Tensor"));
            s.insert(format!("torch.cuda.{k}Tensor"));
        }
        for b in BUILTIN_TYPES {
            s.insert(format!("builtins.{b}"));
            s.insert(format!("__builtin__.{b}"));
        }
        s
    })
}

/// Number of exact entries in the built-in allow-list.
pub fn builtin_len() -> usize {
    table().len()
}

/// Is `name` (`module.qualname`) safe to import for Python's unpickler? `extra` holds exact
/// names supplied by the caller. `__torch__.*` names are never allowed here (see
/// `is_torchscript_class`).
pub fn is_allowed(name: &str, extra: &[String]) -> bool {
    table().contains(name) || extra.iter().any(|e| e == name)
}

/// Is `name` a TorchScript class reference (`__torch__.` followed by a dotted path of plain
/// identifiers)? Such a name is safe only in a pickle that TorchScript's C++ unpickler reads
/// (the `data.pkl` and `constants.pkl` records of a TorchScript archive); `__torch__` alone is
/// not matched.
pub fn is_torchscript_class(name: &str) -> bool {
    name.strip_prefix("__torch__.").is_some_and(|rest| {
        !rest.is_empty() && rest.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    })
}

/// Is `s` a dotted Python identifier path (what `find_class` can import)?
/// Used in sniff mode to tell text that merely starts with `c` (TorchScript
/// `class ...` sources) from a GLOBAL opcode.
pub fn importable(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            let mut c = p.chars();
            c.next().is_some_and(|f| f.is_alphabetic() || f == '_') && c.all(|x| x.is_alphanumeric() || x == '_')
        })
}
