//! Test data several test files use: seed 002's HPA and cAdvisor CPU counters.

/// Seed 002's HPA (`kubectl autoscale deployment php-apache --cpu-percent=50 --min=1
/// --max=10`) as the API server stores it in autoscaling/v2.
pub const PHP_APACHE_HPA: &str = r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: php-apache, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: php-apache}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#;

/// cAdvisor's `container_cpu_usage_seconds_total` for the containers of pod `pod` in
/// namespace `default`, each `(container, cores)` growing `cores` CPU-seconds per second,
/// and beside it, as cAdvisor always exports it, `container_memory_working_set_bytes`
/// (a steady 64 MiB per container): `samples` points 15 s apart from `start_ms`, with
/// explicit timestamps.
pub fn cadvisor_cpu(pod: &str, containers: &[(&str, f64)], start_ms: i64, samples: i64) -> String {
    let mut cpu = String::from("# TYPE container_cpu_usage_seconds_total counter\n");
    let mut memory = String::from("# TYPE container_memory_working_set_bytes gauge\n");
    for i in 0..samples {
        let at = start_ms + i * 15_000;
        for (container, cores) in containers {
            let labels = format!("namespace=\"default\",pod=\"{pod}\",container=\"{container}\"");
            cpu.push_str(&format!(
                "container_cpu_usage_seconds_total{{{labels}}} {} {at}\n",
                cores * (i * 15) as f64
            ));
            memory.push_str(&format!(
                "container_memory_working_set_bytes{{{labels}}} 67108864 {at}\n"
            ));
        }
    }
    let mut expo = cpu;
    expo.push_str(&memory);
    expo
}

/// Seed 002's load on its one php-apache pod over the last five minutes: 0.6101 CPU-seconds
/// per second, 610m of the walkthrough's 200m request (305%).
pub fn php_apache_load_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    cadvisor_cpu(
        "php-apache-5d54745f55-kx9mg",
        &[("php-apache", 0.6101)],
        now - 300_000,
        21,
    )
}
