//! The input plugin in a fake Fluent Bit 5.1.1 (the input ABI's calls and layouts, as
//! `../shared/docs/fluent-bit.md` describes them: Register, Init with the shared plugin
//! structure and a context whose plugin pointer is at offset 8, the collect callback with a
//! cleanup, Pause/Resume/Exit without a context, all on the instance's one thread), against
//! kinesis-mock in a private network namespace (`support`).

#[path = "../../../../kinesis/tests/support/mod.rs"]
mod support;
#[path = "../../testing.rs"]
mod testing;

use testing::LOG;

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::{Duration, Instant};

use kpl_fluent_bit::abi::{Api, InputContext, InputPlugin, ProxyDef};
use kpl_fluent_bit::msgpack::{events, Value};
use kpl_kinesis::sink::UserRecord;
use libloading::{Library, Symbol};
use libtest_mimic::{Arguments, Failed, Trial};

unsafe extern "C" fn log_check(_ins: *mut c_void, level: c_int) -> c_int {
    c_int::from(level <= 3)
}

struct Props(Vec<(String, CString)>);

unsafe extern "C" fn get_property(key: *const c_char, ins: *mut c_void) -> *const c_char {
    let key = unsafe { CStr::from_ptr(key) }.to_string_lossy();
    let props = unsafe { &*(ins as *const Props) };
    props
        .0
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
}

type Collect = unsafe extern "C" fn(*mut c_void, *mut *mut c_void, *mut usize) -> c_int;
type Cleanup = unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int;
type NoArgs = unsafe extern "C" fn();
type Exit = unsafe extern "C" fn() -> c_int;

/// One loaded plugin and one instance, driven from the calling thread.
struct Host {
    lib: Library,
    _api: Box<Api>,
    _props: Box<Props>,
    _plugin: Box<InputPlugin>,
    context: Box<InputContext>,
    _def: Vec<u64>,
}

fn library() -> std::path::PathBuf {
    testing::plugin_library("libkpl_fluent_bit_in.so")
}

impl Host {
    /// Register + Init; the Init return code.
    fn start(props: &[(&str, &str)]) -> (Host, c_int) {
        let lib = unsafe { Library::new(library()) }.expect("dlopen");
        let mut def = vec![0u64; 6];
        let code = unsafe {
            let f: Symbol<unsafe extern "C" fn(*mut ProxyDef) -> c_int> =
                lib.get(b"FLBPluginRegister").unwrap();
            f(def.as_mut_ptr() as *mut ProxyDef)
        };
        assert_eq!(code, 0);
        let registered = unsafe { &*(def.as_ptr() as *const ProxyDef) };
        assert_eq!(
            (registered.kind, registered.proxy, registered.flags),
            (1, 11, 0)
        );
        let log = testing::log_print_fn();
        let mut api = Box::new(Api {
            output_get_property: None,
            input_get_property: Some(get_property),
            output_get_cmt_instance: std::ptr::null_mut(),
            input_get_cmt_instance: std::ptr::null_mut(),
            log_print: Some(log),
            input_log_check: Some(log_check),
            output_log_check: None,
        });
        let mut props = Box::new(Props(
            props
                .iter()
                .map(|(k, v)| (k.to_string(), CString::new(*v).unwrap()))
                .collect(),
        ));
        let mut context = Box::new(InputContext {
            coll_fd: 7,
            remote_context: std::ptr::null_mut(),
            proxy: std::ptr::null_mut(),
        });
        let mut plugin = Box::new(InputPlugin {
            name: c"kpl_kinesis".as_ptr() as *mut c_char,
            api: &mut *api,
            i_ins: &mut *props as *mut Props as *mut c_void,
            context: &mut *context,
        });
        let code = unsafe {
            let f: Symbol<unsafe extern "C" fn(*mut InputPlugin) -> c_int> =
                lib.get(b"FLBPluginInit").unwrap();
            f(&mut *plugin)
        };
        assert_eq!(
            context.coll_fd, 7,
            "the plugin must not touch the host's fields"
        );
        let host = Host {
            lib,
            _api: api,
            _props: props,
            _plugin: plugin,
            context,
            _def: def,
        };
        (host, code)
    }

    /// One collect + cleanup, as the host does them: the events' bytes, copied.
    fn collect(&self) -> Vec<u8> {
        let mut data: *mut c_void = std::ptr::null_mut();
        let mut len = 0usize;
        unsafe {
            let collect: Symbol<Collect> = self.lib.get(b"FLBPluginInputCallbackCtx").unwrap();
            let cleanup: Symbol<Cleanup> =
                self.lib.get(b"FLBPluginInputCleanupCallbackCtx").unwrap();
            let ret = collect(self.context.remote_context, &mut data, &mut len);
            assert!(ret == 0 || ret == 1, "collect returned {ret}");
            if len == 0 {
                return Vec::new();
            }
            let copy = std::slice::from_raw_parts(data as *const u8, len).to_vec();
            assert_eq!(cleanup(self.context.remote_context, data), 0);
            copy
        }
    }

    fn call(&self, name: &[u8]) {
        unsafe {
            let f: Symbol<NoArgs> = self.lib.get(name).unwrap();
            f();
        }
    }

    fn exit(self) {
        unsafe {
            let f: Symbol<Exit> = self.lib.get(b"FLBPluginExit").unwrap();
            f();
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let server = support::enter_namespace_and_start();
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDTEST");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let trials = vec![
        Trial::test(
            "collects_every_record_once_pauses_resumes_and_checkpoints_at_exit",
            collect_pause_exit,
        ),
        Trial::test("bad_properties_fail_init_naming_them", bad_properties),
        Trial::test(
            "a_missing_stream_is_logged_with_a_hint_naming_the_properties",
            missing_stream,
        ),
    ];
    let mut args = args;
    args.test_threads = Some(1);
    let c = libtest_mimic::run(&args, trials);
    drop(server);
    c.exit();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn put(stream: &str, range: std::ops::Range<u32>) -> Result<(), Failed> {
    let sink = support::sink_for(stream, support::patient_config()).await?;
    let mut pending = Vec::new();
    for i in range {
        pending.push(
            sink.put(UserRecord::new(
                format!("k{}", i % 13),
                format!(r#"{{"n":{i}}}"#).into_bytes(),
            ))
            .await?,
        );
    }
    sink.flush().await;
    support::all_stored(pending).await?;
    sink.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Collects until `want` distinct records were seen (or a minute passed), adding to `seen`.
fn collect_until(host: &Host, seen: &mut BTreeMap<u64, usize>, want: usize) -> Result<(), Failed> {
    let started = Instant::now();
    while seen.len() < want {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "{} of {want} records collected in 60 s: {:?}",
                seen.len(),
                LOG.lock().unwrap()
            )
            .into());
        }
        let batch = host.collect();
        for e in events(&batch) {
            let e = e.map_err(|e| format!("the plugin's batch does not decode: {e}"))?;
            let Value::Map(fields) = &e.record else {
                return Err("an event's record is not a map".into());
            };
            let n = fields
                .iter()
                .find(|(k, _)| *k == Value::Str(b"n"))
                .and_then(|(_, v)| match v {
                    Value::Uint(n) => Some(*n),
                    _ => None,
                })
                .ok_or("an event without n")?;
            let meta = fields
                .iter()
                .find(|(k, _)| *k == Value::Str(b"kinesis"))
                .ok_or("no kinesis metadata")?;
            if !matches!(&meta.1, Value::Map(m) if m.len() == 5) {
                return Err("the metadata is not a map of 5".into());
            }
            *seen.entry(n).or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn collect_pause_exit() -> Result<(), Failed> {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("kpl-fake-in-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let checkpoints = dir.join("cp.json");
    let _ = std::fs::remove_file(&checkpoints);
    rt.block_on(async {
        let admin = support::admin();
        support::create_stream(&admin, "fake-in", 2).await;
        put("fake-in", 0..2_000).await
    })?;
    let cp = checkpoints.display().to_string();
    let (host, code) = Host::start(&[
        ("stream", "fake-in"),
        ("endpoint", support::ENDPOINT),
        ("checkpoint_file", &cp),
        ("poll_interval", "100ms"),
    ]);
    assert_eq!(code, 1, "{:?}", LOG.lock().unwrap());
    let mut seen = BTreeMap::new();
    collect_until(&host, &mut seen, 2_000)?;
    // Paused: nothing is handed over, however long; resumed: everything comes.
    host.call(b"FLBPluginInputPause");
    rt.block_on(put("fake-in", 2_000..3_000))?;
    for _ in 0..10 {
        if !host.collect().is_empty() {
            return Err("a batch was handed over while paused".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    host.call(b"FLBPluginInputResume");
    collect_until(&host, &mut seen, 3_000)?;
    if let Some((n, c)) = seen.iter().find(|(_, c)| **c > 1) {
        return Err(format!("record {n} collected {c} times").into());
    }
    host.exit();
    // Exit checkpointed what was handed over: both shards are at their last record.
    let text = std::fs::read_to_string(&checkpoints)?;
    let saved: serde_json::Value = serde_json::from_str(&text)?;
    if saved.as_object().map_or(0, |m| m.len()) != 2 {
        return Err(format!("checkpoints after exit: {text}").into());
    }
    let log = LOG
        .lock()
        .unwrap()
        .iter()
        .map(|(_, m)| m.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if !log.contains("exit: 3000 user records read, 3000 handed to Fluent Bit") {
        return Err(format!("no exit summary: {log}").into());
    }
    Ok(())
}

fn bad_properties() -> Result<(), Failed> {
    for (props, name) in [
        (vec![("region", "us-east-1")], "'stream'"),
        (vec![("stream", "s"), ("start", "yesterday")], "'start'"),
        (vec![("stream", "s"), ("format", "xml")], "'format'"),
    ] {
        LOG.lock().unwrap().clear();
        let (host, code) = Host::start(&props);
        if code != 0 {
            return Err(format!("Init accepted {props:?}").into());
        }
        let log = LOG
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if !log.contains(name) {
            return Err(format!("{name} not named: {log}").into());
        }
        drop(host);
    }
    Ok(())
}

fn missing_stream() -> Result<(), Failed> {
    LOG.lock().unwrap().clear();
    let (host, code) = Host::start(&[
        ("stream", "no-such-stream"),
        ("endpoint", support::ENDPOINT),
    ]);
    if code != 1 {
        return Err(format!("Init failed: {:?}", LOG.lock().unwrap()).into());
    }
    // The reader says why it cannot read, its hint naming the plugin's properties (not the
    // kpl command line's flags), and keeps trying.
    let hint = "(is the stream name right? the stream property; the region? the region property)";
    let started = Instant::now();
    let log = loop {
        let log = LOG
            .lock()
            .unwrap()
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if log.contains(hint) || started.elapsed() > Duration::from_secs(30) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    host.exit();
    if !log.contains("stream \"no-such-stream\" does not exist") || !log.contains(hint) {
        return Err(format!("no line naming the stream with the hint: {log}").into());
    }
    if log.contains("--stream") || log.contains("--region") {
        return Err(format!("a CLI flag in the plugin's log: {log}").into());
    }
    Ok(())
}
