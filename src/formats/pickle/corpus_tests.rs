//! Corpus tests: every file under `shared/corpus/{malicious,pickle,pytorch,
//! numpy,malformed}` with its expected verdict (and, for malicious files,
//! the exact global named in MANIFEST.md / bugs.md).

use super::*;

/// `<repository>/../shared/corpus`.
fn corpus() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus").to_string()
}

fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(format!("{}/{dir}", corpus()))
        .expect("corpus folder")
        .map(|e| {
            let p = e.expect("dir entry").path();
            (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), std::fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{dir} is empty");
    out
}

fn scan(b: &[u8]) -> ScanReport {
    scan_bytes(b, &ScanOptions::default())
}

/// (file, global that must be reported Dangerous, member chain).
const MALICIOUS: &[(&str, &str, Option<&str>)] = &[
    ("B08_picklescan_malicious1_0x1.zip", "builtins.eval", Some("model/config.pkl")),
    ("B08_picklescan_malicious1_0x20.zip", "builtins.eval", Some("model/config.pkl")),
    ("B08_picklescan_malicious1_0x40.zip", "builtins.eval", Some("model/config.pkl")),
    ("B10_picklescan_malicious23.pkl", "os.system", None),
    ("B12a_gzip_wrapped_malicious.pkl.gz", "posix.system", Some("gzip>")),
    ("B12b_bz2_wrapped_malicious.pkl.bz2", "posix.system", Some("bzip2>")),
    ("B12c_xz_wrapped_malicious.joblib", "posix.system", Some("xz>")),
    ("B12d_zlib_wrapped_malicious.joblib", "posix.system", Some("zlib>")),
    ("modelscan_unsafe_zip_pytorch.pt", "posix.system", Some("unsafe_zip_pytorch/data.pkl")),
    ("picklescan_GHSA-4675-36f9-wf6r.pkl", "ctypes.CDLL", None),
    ("picklescan_GHSA-49gj-c84q-6qm9.pkl", "cProfile.run", None),
    ("picklescan_GHSA-cj3c-v495-4xqh.pkl", "code.InteractiveInterpreter.runcode", None),
    ("picklescan_GHSA-g38g-8gr9-h9xp-uuid.pkl", "uuid._get_command_stdout", None),
    ("picklescan_GHSA-jgw4-cr84-mqxg.bin", "asyncio.unix_events._UnixSubprocessTransport._start", None),
    ("picklescan_GHSA-m273-6v24-x4m4.pkl", "distutils.file_util.write_file", None),
    ("picklescan_GHSA-vqmv-47xg-9wpr.pkl", "pty.spawn", None),
    ("picklescan_GHSA-xp4f-hrf8-rxw7.pkl", "ensurepip._run_pip", None),
    ("picklescan_io_FileIO.pkl", "_io.FileIO", None),
    ("picklescan_logging_FileHandler.pkl", "logging.FileHandler", None),
    ("picklescan_malicious0.pkl", "__builtin__.eval", None),
    ("picklescan_malicious0.pkl", "__builtin__.compile", None),
    ("picklescan_malicious0.pkl", "__builtin__.getattr", None),
    ("picklescan_malicious0.pkl", "__builtin__.globals", None),
    ("picklescan_malicious0.pkl", "__builtin__.apply", None),
    ("picklescan_malicious1.zip", "builtins.eval", Some("data.pkl")),
    ("picklescan_malicious10.pkl", "__builtin__.exec", None),
    ("picklescan_malicious12.pkl", "builtins.__import__", None),
    ("picklescan_malicious12.pkl", "operator.attrgetter", None),
    ("picklescan_malicious13a.pkl", "pickle.loads", None),
    ("picklescan_malicious13b.pkl", "_pickle.loads", None),
    ("picklescan_malicious14.pkl", "runpy._run_code", None),
    ("picklescan_malicious15a.pkl", "bdb.Bdb", None),
    ("picklescan_malicious15a.pkl", "__builtin__.getattr", None),
    ("picklescan_malicious16.pkl", "pip.main", None),
    ("picklescan_malicious18.pkl", "pydoc.pipepager", None),
    ("picklescan_malicious1_v0.pkl", "__builtin__.eval", None),
    ("picklescan_malicious1_v3.pkl", "builtins.eval", None),
    ("picklescan_malicious1_v4.pkl", "builtins.eval", None),
    ("picklescan_malicious20.pkl", "venv.create", None),
    ("picklescan_malicious21.pkl", "timeit.timeit", None),
    ("picklescan_malicious22.pkl", "numpy.testing._private.utils.runstring", None),
    ("picklescan_malicious2_v0.pkl", "posix.system", None),
    ("picklescan_malicious2_v3.pkl", "posix.system", None),
    ("picklescan_malicious2_v4.pkl", "posix.system", None),
    ("picklescan_malicious3.pkl", "httplib.HTTPSConnection", None),
    ("picklescan_malicious4.pickle", "requests.api.get", None),
    ("picklescan_malicious5.pickle", "aiohttp.client.ClientSession", None),
    ("picklescan_malicious7.pkl", "socket.create_connection", None),
    ("picklescan_malicious8.pkl", "subprocess.run", None),
    ("picklescan_malicious9.pkl", "sys.exit", None),
    ("picklescan_types_CodeType.pkl", "types.CodeType", None),
    ("picklescan_urllib_request_urlopen.pkl", "urllib.request.urlopen", None),
];

/// Malicious files that cannot be opened at all (no global to name).
const MALICIOUS_UNSCANNABLE: &[&str] = &["picklescan_malicious1.7z"];

#[test]
fn every_malicious_file_is_blocked_with_its_global() {
    for (name, bytes) in files("malicious") {
        let r = scan(&bytes);
        assert_ne!(r.verdict, Verdict::Clean, "{name} came out Clean");
        if MALICIOUS_UNSCANNABLE.contains(&name.as_str()) {
            assert_eq!(r.verdict, Verdict::Unscannable, "{name}");
            continue;
        }
        let expected: Vec<_> = MALICIOUS.iter().filter(|(f, _, _)| *f == name).collect();
        assert!(!expected.is_empty(), "{name} has no expectation in the table");
        assert_eq!(r.verdict, Verdict::Dangerous, "{name}: {r:?}");
        for (_, global, member) in expected {
            let hit = r.findings.iter().find(|f| f.kind == FindingKind::Dangerous && f.global == *global);
            let hit = hit.unwrap_or_else(|| panic!("{name}: {global} not reported: {r:?}"));
            assert_eq!(hit.member.as_deref(), *member, "{name}");
        }
    }
}

#[test]
fn benign_corpus_is_clean() {
    for dir in ["pickle", "pytorch", "numpy"] {
        for (name, bytes) in files(dir) {
            let r = scan(&bytes);
            assert_eq!(r.verdict, Verdict::Clean, "{dir}/{name}: {:?}", r.findings);
            assert!(r.findings.is_empty());
        }
    }
}

#[test]
fn benign_corpus_uses_expected_globals() {
    let g = |p: &str| scan(&std::fs::read(format!("{}/{p}", corpus())).expect("read")).globals;
    assert_eq!(
        g("pytorch/picklescan_legacy_pytorch_model.bin"),
        vec!["collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2"]
    );
    assert!(
        g("pickle/numpy_generator_pcg64_np126.pkl.gz").contains(&"numpy.random._pickle.__generator_ctor".to_string())
    );
    assert!(
        g("pickle/sklearn-1.9.1_iris_RandomForest.compress3.joblib").contains(&"sklearn.tree._tree.Tree".to_string())
    );
    assert!(g("numpy/numpy_py2-objarr.npz").contains(&"__builtin__.xrange".to_string()));
    assert!(g("pytorch/silero_vad.jit").contains(&"torch.jit._pickle.build_intlist".to_string()));
    assert!(g("pickle/picklescan_benign0_v4.pkl").is_empty());
}

#[test]
fn malformed_corpus_is_never_clean() {
    for (name, bytes) in files("malformed") {
        let r = scan(&bytes);
        assert_ne!(r.verdict, Verdict::Clean, "malformed/{name}");
    }
    let read = |f: &str| std::fs::read(format!("{}/malformed/{f}", corpus())).expect("read");
    let r = scan(&read("picklescan_broken_model.pkl"));
    assert_eq!(r.verdict, Verdict::Dangerous);
    assert!(r.has_dangerous("builtins.exec"));
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::Unscannable));
    let r = scan(&read("picklescan_not_a_pickle.bin"));
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings[0].reason.contains("not a complete pickle"), "{r:?}");
    for f in ["modelscan_password_protected.zip", "picklescan_benign_password_protected.zip"] {
        let r = scan(&read(f));
        assert_eq!(r.verdict, Verdict::Unscannable, "{f}");
        assert!(r.findings.iter().any(|x| x.reason.contains("encrypted")), "{f}: {r:?}");
    }
    let r = scan(&read("derived_truncated_silero_vad.jit.first1MiB.pt"));
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings.iter().any(|x| x.reason.contains("central directory")));
    assert_eq!(scan(&read("picklescan_bad_pytorch.pt")).verdict, Verdict::Unscannable);
}

#[test]
fn scan_reader_matches_scan_bytes() {
    for dir in ["malicious", "pickle", "pytorch", "numpy", "malformed"] {
        for (name, bytes) in files(dir) {
            let a = scan(&bytes);
            let b = scan_reader(std::io::Cursor::new(&bytes), bytes.len() as u64, &ScanOptions::default());
            assert_eq!(a.verdict, b.verdict, "{dir}/{name}");
            assert_eq!(a.globals, b.globals, "{dir}/{name}");
        }
    }
}

#[test]
fn scan_reader_large_inputs() {
    let read = |f: &str| std::fs::read(format!("{}/{f}", corpus())).expect("read");
    let small = ScanOptions { max_in_memory_bytes: 64 << 10, ..Default::default() };
    // Zips are read member by member whatever their size.
    let jit = read("pytorch/silero_vad.jit");
    let r = scan_reader(std::io::Cursor::new(&jit), jit.len() as u64, &small);
    assert_eq!(r.verdict, Verdict::Clean, "{r:?}");
    // A legacy torch file whose pickles fit in the prefix can be judged.
    let legacy = read("pytorch/lpips_v0.1_squeeze.pth");
    let tiny = ScanOptions { max_in_memory_bytes: 8 << 10, ..Default::default() };
    let r = scan_reader(std::io::Cursor::new(&legacy), legacy.len() as u64, &tiny);
    assert_eq!(r.verdict, Verdict::Clean, "{r:?}");
    // A plain pickle larger than the cap cannot.
    let pk = read("pickle/sklearn-1.9.1_iris_Pipeline_StandardScaler_SVC.joblib");
    let r = scan_reader(std::io::Cursor::new(&pk), pk.len() as u64, &ScanOptions { max_in_memory_bytes: 1024, ..tiny });
    assert_eq!(r.verdict, Verdict::Unscannable);
    assert!(r.findings.iter().any(|f| f.reason.contains("max_in_memory_bytes")));
}

#[test]
fn malicious_prefixes_are_never_clean() {
    for (name, bytes) in files("malicious") {
        for cut in 0..bytes.len() {
            let r = scan(&bytes[..cut]);
            assert_ne!(r.verdict, Verdict::Clean, "{name} cut at {cut}");
        }
    }
}
