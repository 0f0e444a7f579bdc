//! `ringsieve config`: the effective settings of `ringsieve run`, each with
//! where it came from, and exit code 2 naming the variable or flag on a
//! bad value. Needs no privileges: nothing is captured.

use std::process::Command;

/// `ringsieve ARGS...` with `env` set and the `unset` variables removed:
/// its exit code, stdout and stderr.
fn ringsieve(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringsieve"));
    command.args(args);
    for key in unset {
        command.env_remove(key);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("ringsieve runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    ringsieve(&[&["config"], args].concat(), env, &[])
}

#[test]
fn each_setting_says_whether_a_flag_a_variable_or_the_default_set_it() {
    let (code, out, err) = config(
        &["--json", "--eve", "/tmp/eve.json", "--exclude", "veth*"],
        &[("RINGSIEVE_WORKERS", "3")],
    );
    assert_eq!(code, Some(0), "{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(settings["workers"]["value"], "3");
    assert_eq!(settings["workers"]["source"], "RINGSIEVE_WORKERS");
    assert_eq!(settings["eve"]["value"], "/tmp/eve.json");
    assert_eq!(settings["eve"]["source"], "--eve");
    assert_eq!(settings["exclude"]["value"], "veth*");
    assert_eq!(settings["dedup-window"]["value"], "20");
    assert_eq!(settings["dedup-window"]["source"], "default");
    assert_eq!(settings["dedup-window"]["variable"], "RINGSIEVE_DEDUP_WINDOW");
    assert_eq!(settings["interface"]["source"], "unset");
}

#[test]
fn a_bad_value_exits_2_naming_where_it_came_from() {
    let (code, _, err) = config(&[], &[("RINGSIEVE_QUEUE_DEPTH", "5")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("RINGSIEVE_QUEUE_DEPTH") && err.contains("\"5\"") && err.contains("128"),
        "{err}"
    );
    let (code, _, err) = config(&["--metrics", "localhost"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--metrics") && err.contains("localhost"), "{err}");
}

#[test]
fn the_worker_poll_is_a_setting_and_a_bad_one_exits_2() {
    let (code, out, err) = config(&["--json"], &[("RINGSIEVE_WORKER_POLL", "0")]);
    assert_eq!(code, Some(0), "{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(settings["worker-poll"]["value"], "0");
    assert_eq!(settings["worker-poll"]["source"], "RINGSIEVE_WORKER_POLL");
    let (code, _, err) = config(&["--worker-poll", "2000000"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--worker-poll") && err.contains("\"2000000\"") && err.contains("0 to 1000000"),
        "{err}"
    );
}

#[test]
fn a_bad_bench_payload_exits_2_naming_the_flag_or_variable() {
    let bench = |args: &[&str], env: &[(&str, &str)]| {
        let (code, _, err) = ringsieve(&[&["bench"], args].concat(), env, &["RINGSIEVE_BENCH_PAYLOAD"]);
        (code, err)
    };
    let (code, err) = bench(&["--payload", "xml"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--payload") && err.contains("xml") && err.contains("random or http"),
        "{err}"
    );
    let (code, err) = bench(&[], &[("RINGSIEVE_BENCH_PAYLOAD", "HTTP/2")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("RINGSIEVE_BENCH_PAYLOAD") && err.contains("HTTP/2"),
        "{err}"
    );
}

/// `bench --capture-cpus` pins the capture thread (named in the JSON
/// line), and a list that is not one exits 2 naming the flag or variable.
#[test]
fn bench_capture_cpus_pins_or_exits_2_naming_the_flag_or_variable() {
    let bench = |args: &[&str], env: &[(&str, &str)]| {
        ringsieve(
            &[&["bench", "--packets", "2000", "--flows", "100"], args].concat(),
            env,
            &["RINGSIEVE_CAPTURE_CPUS", "RINGSIEVE_WORKER_CPUS"],
        )
    };
    let (code, out, err) = bench(&["--capture-cpus", "0", "--worker-cpus", "0"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let line: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or_default()).expect("a JSON line");
    assert_eq!(line["capture_cpu"], 0, "{line}");
    assert_eq!(line["worker_cpus"], serde_json::json!([0]), "{line}");
    let (_, out, _) = bench(&[], &[]);
    let line: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or_default()).expect("a JSON line");
    assert!(line["capture_cpu"].is_null(), "{line}");

    let (code, _, err) = bench(&["--capture-cpus", "first"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--capture-cpus") && err.contains("\"first\"") && err.contains("a CPU list"),
        "{err}"
    );
    let (code, _, err) = bench(&[], &[("RINGSIEVE_CAPTURE_CPUS", "1-")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("RINGSIEVE_CAPTURE_CPUS") && err.contains("1-"), "{err}");
}

#[test]
fn the_interface_variables_select_and_a_bad_glob_exits_2_naming_the_variable() {
    let (code, out, err) = config(
        &["--json"],
        &[
            ("RINGSIEVE_EXCLUDE", "veth*,br-*"),
            ("RINGSIEVE_INTERFACE", "eth0,docker0"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(settings["exclude"]["source"], "RINGSIEVE_EXCLUDE", "{settings}");
    assert_eq!(settings["exclude"]["value"], "veth*,br-*", "{settings}");
    assert_eq!(settings["interface"]["source"], "RINGSIEVE_INTERFACE", "{settings}");
    assert_eq!(settings["interface"]["value"], "eth0,docker0", "{settings}");
    // A flag wins over the variable.
    let (code, out, err) = config(&["--json", "--exclude", "eth*"], &[("RINGSIEVE_EXCLUDE", "veth*")]);
    assert_eq!(code, Some(0), "{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(settings["exclude"]["source"], "--exclude", "{settings}");
    assert_eq!(settings["exclude"]["value"], "eth*", "{settings}");
    // An unclosed class is no glob.
    let (code, _, err) = config(&[], &[("RINGSIEVE_EXCLUDE", "veth[0")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("RINGSIEVE_EXCLUDE") && err.contains("veth[0") && err.contains("glob"),
        "{err}"
    );
    let (code, _, err) = config(&[], &[("RINGSIEVE_INTERFACE", "eth0,a/b")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("RINGSIEVE_INTERFACE") && err.contains("a/b"), "{err}");
    let (code, _, err) = config(&[], &[("RINGSIEVE_INTERFACE", "br-[x")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("RINGSIEVE_INTERFACE") && err.contains("br-[x"), "{err}");
}

#[test]
fn spare_rings_is_a_setting_and_a_bad_count_exits_2() {
    let (code, out, err) = config(&["--json"], &[("RINGSIEVE_SPARE_RINGS", "8")]);
    assert_eq!(code, Some(0), "{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(settings["spare-rings"]["value"], "8");
    assert_eq!(settings["spare-rings"]["source"], "RINGSIEVE_SPARE_RINGS");
    let (code, out, err) = config(&["--json"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let settings: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(settings["spare-rings"]["value"], "2");
    for bad in ["65", "some"] {
        let (code, _, err) = config(&["--spare-rings", bad], &[]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(
            err.contains("--spare-rings") && err.contains(bad) && err.contains("0 to 64"),
            "{bad}: {err}"
        );
    }
}
