// SPDX-License-Identifier: GPL-2.0

//! The CI-sized benchmark: runs `bench` with few iterations and checks that every
//! operation produced a measurement. It asserts nothing about the numbers themselves
//! (`make bench` is where they are measured, under icount).

use rkvm_selftests::{check, host_runs_guests, run_or_skip, Outcome, TestResult};

fn benchmark_runs_every_operation() -> TestResult {
    let out = std::process::Command::new("/selftests/bench")
        .args(["/dev/rkvm", "200"])
        .output()
        .map_err(|e| format!("running bench: {e}"))?;
    check!(out.status.success(), "bench exited with {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("bench,")).collect();
    for line in text.lines() {
        println!("# {line}");
    }
    let ops: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("bench-ops,")?.parse().ok())
        .ok_or("bench printed no operation count")?;
    check!(
        rows.len() == ops,
        "{} result lines, expected {ops}",
        rows.len()
    );
    for row in rows {
        let ticks = row.split(',').nth(2).unwrap_or("");
        check!(
            ticks.parse::<u64>().is_ok_and(|t| t > 0),
            "no measurement in '{row}'"
        );
    }
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_bench_smoke",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[(
            "benchmark_runs_every_operation",
            benchmark_runs_every_operation,
        )],
    )
}
