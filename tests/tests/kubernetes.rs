//! The Kubernetes manifests in `deploy/k8s/` (README "Packages"), read with a
//! YAML parser and checked against each other and against ringcast: every
//! ConfigMap's ringcast.toml parses and validates with `ringcast_conf` (with
//! the environment overrides the pods set); probes ask `/healthz` on the port
//! the config's `[http_api]` listens on; container ports are the config's;
//! `terminationGracePeriodSeconds` outlasts the graceful quit and SIGTERM
//! starts one; the liveness probe cannot fire during it; Service and
//! PodDisruptionBudget selectors match pod labels and their target ports name
//! container ports; the edges' origins and the origins' coworkers are exactly
//! the StatefulSet's pods; shards fit the CPU limit and the memlock budget;
//! the pods' user is the image's. No cluster is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringcast_conf::{ClusterMode, Config, LogTarget};
use yaml_rust2::{Yaml, YamlLoader};

/// The memlock limit a pod gets when the runtime does not raise it (the
/// kernel default since Linux 5.16); pod specs cannot set it.
const DEFAULT_MEMLOCK: u64 = 8 << 20;
/// Where the pods mount their ConfigMap's ringcast.toml (and the image's).
const CONFIG_PATH: &str = "/etc/ringcast/ringcast.toml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn k8s_dir() -> PathBuf {
    repo().join("deploy/k8s")
}

/// One parsed document and the file it came from.
struct Doc {
    file: String,
    yaml: Yaml,
}

impl Doc {
    fn kind(&self) -> &str {
        self.yaml["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.yaml["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn label(&self) -> String {
        format!("{} {}/{}", self.file, self.kind(), self.name())
    }
}

fn yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(k8s_dir())
        .expect("deploy/k8s")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// Every document of every manifest (kustomization.yaml apart).
fn load() -> Vec<Doc> {
    let mut docs = Vec::new();
    for path in yaml_files() {
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if file == "kustomization.yaml" {
            continue;
        }
        let text = fs::read_to_string(&path).expect("read manifest");
        let parsed = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
        for yaml in parsed {
            if yaml.is_null() {
                continue;
            }
            docs.push(Doc {
                file: file.clone(),
                yaml,
            });
        }
    }
    docs
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {y:?}"))
}

fn int_of(y: &Yaml, what: &str) -> i64 {
    y.as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {y:?}"))
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map_or(&[], Vec::as_slice)
}

/// A string map (labels, selectors, ConfigMap data).
fn string_map(y: &Yaml, what: &str) -> BTreeMap<String, String> {
    y.as_hash()
        .unwrap_or_else(|| panic!("{what} is not a map: {y:?}"))
        .iter()
        .map(|(k, v)| (str_of(k, what).to_owned(), str_of(v, what).to_owned()))
        .collect()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `"2"`, `2` or `"2000m"` CPUs, in millicores.
fn millicores(y: &Yaml) -> i64 {
    match y {
        Yaml::Integer(n) => n * 1000,
        Yaml::String(s) => match s.strip_suffix('m') {
            Some(m) => m.parse().expect("millicores"),
            None => s.parse::<i64>().expect("cores") * 1000,
        },
        other => panic!("cpu quantity {other:?}"),
    }
}

/// A workload (StatefulSet or Deployment) with what the checks need.
struct Workload<'a> {
    doc: &'a Doc,
    pod_labels: BTreeMap<String, String>,
    config: Config,
    /// containerPort by port name.
    ports: BTreeMap<String, i64>,
}

impl Workload<'_> {
    fn pod(&self) -> &Yaml {
        &self.doc.yaml["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Yaml {
        let containers = list(&self.pod()["containers"]);
        assert_eq!(containers.len(), 1, "{}: one container", self.doc.label());
        &containers[0]
    }

    /// A probe's or Service's port: a name of a container port, or a number.
    fn resolve_port(&self, port: &Yaml) -> i64 {
        match port {
            Yaml::String(name) => *self
                .ports
                .get(name)
                .unwrap_or_else(|| panic!("{}: no container port named {name}", self.doc.label())),
            Yaml::Integer(n) => *n,
            other => panic!("{}: port {other:?}", self.doc.label()),
        }
    }
}

/// The ConfigMap's ringcast.toml, parsed with the environment the pod sets
/// (`$(POD_NAME)` as the first pod's name).
fn pod_config(doc: &Doc, configmaps: &BTreeMap<String, String>) -> Config {
    let pod = &doc.yaml["spec"]["template"]["spec"];
    let volumes = list(&pod["volumes"]);
    let container = &list(&pod["containers"])[0];
    let mounts = list(&container["volumeMounts"]);
    let mount = mounts
        .iter()
        .find(|m| format!("{}/ringcast.toml", str_of(&m["mountPath"], "mountPath")) == CONFIG_PATH)
        .unwrap_or_else(|| panic!("{}: a volume mounted at {CONFIG_PATH}", doc.label()));
    assert!(
        mount["subPath"].is_badvalue(),
        "{}: a subPath mount never sees ConfigMap updates",
        doc.label()
    );
    let volume = volumes
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let cm = str_of(&volume["configMap"]["name"], "configMap.name");
    let text = configmaps
        .get(cm)
        .unwrap_or_else(|| panic!("{}: no ConfigMap {cm} with ringcast.toml", doc.label()));
    let args: Vec<&str> = list(&container["args"])
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    assert_eq!(args, ["-c", CONFIG_PATH], "{}: args", doc.label());
    let first_pod = format!("{}-0", doc.name());
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for e in list(&container["env"]) {
        let name = str_of(&e["name"], "env name").to_owned();
        let value = match e["value"].as_str() {
            Some(v) => v.replace("$(POD_NAME)", &first_pod),
            None if e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("metadata.name") => {
                first_pod.clone()
            }
            None => continue,
        };
        env.insert(name, value);
    }
    Config::parse_with_env(text, &format!("ConfigMap {cm}"), &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("{}: ConfigMap {cm}: {e}", doc.label()))
}

#[test]
fn every_manifest_parses_and_kustomization_lists_them() {
    let docs = load();
    let kinds: BTreeSet<&str> = docs.iter().map(Doc::kind).collect();
    for kind in ["ConfigMap", "Service", "StatefulSet", "Deployment"] {
        assert!(kinds.contains(kind), "a {kind}: {kinds:?}");
    }
    let mut names = BTreeSet::new();
    for d in &docs {
        assert!(
            d.yaml["apiVersion"].as_str().is_some() && !d.kind().is_empty() && !d.name().is_empty(),
            "{}: apiVersion, kind and metadata.name",
            d.file
        );
        assert!(
            names.insert((d.kind().to_owned(), d.name().to_owned())),
            "{} is defined twice",
            d.label()
        );
        let labels = string_map(&d.yaml["metadata"]["labels"], "metadata.labels");
        assert_eq!(
            labels.get("app.kubernetes.io/name").map(String::as_str),
            Some("ringcast"),
            "{}",
            d.label()
        );
    }
    let kustomization = fs::read_to_string(k8s_dir().join("kustomization.yaml"))
        .expect("deploy/k8s/kustomization.yaml");
    let k = &YamlLoader::load_from_str(&kustomization).expect("kustomization YAML")[0];
    let listed: BTreeSet<&str> = list(&k["resources"])
        .iter()
        .map(|r| str_of(r, "resource"))
        .collect();
    let files: BTreeSet<String> = yaml_files()
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed,
        files.iter().map(String::as_str).collect(),
        "kustomization.yaml lists every manifest"
    );
}

#[test]
fn workloads_fit_their_configs_and_each_other() {
    let docs = load();
    let configmaps: BTreeMap<String, String> = docs
        .iter()
        .filter(|d| d.kind() == "ConfigMap")
        .map(|d| {
            let data = string_map(&d.yaml["data"], "data");
            let text = data
                .get("ringcast.toml")
                .unwrap_or_else(|| panic!("{}: data.ringcast.toml", d.label()))
                .clone();
            // the file alone is valid too (what `ringcast -t` says of it)
            Config::parse(&text, d.name())
                .unwrap_or_else(|e| panic!("{}: ringcast.toml: {e}", d.label()));
            (d.name().to_owned(), text)
        })
        .collect();
    assert!(!configmaps.is_empty());

    let dockerfile =
        fs::read_to_string(repo().join("deploy/docker/Dockerfile")).expect("Dockerfile");
    let image_uid: i64 = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .and_then(|u| u.split(':').next())
        .and_then(|u| u.trim().parse().ok())
        .expect("the Dockerfile's numeric USER");

    let mut workloads = Vec::new();
    for doc in docs
        .iter()
        .filter(|d| d.kind() == "StatefulSet" || d.kind() == "Deployment")
    {
        let label = doc.label();
        let spec = &doc.yaml["spec"];
        let pod_labels = string_map(&spec["template"]["metadata"]["labels"], "pod labels");
        let selector = string_map(&spec["selector"]["matchLabels"], "matchLabels");
        assert!(
            selects(&selector, &pod_labels),
            "{label}: selector vs pod labels"
        );
        let config = pod_config(doc, &configmaps);
        let container = &list(&spec["template"]["spec"]["containers"])[0];
        let ports: BTreeMap<String, i64> = list(&container["ports"])
            .iter()
            .map(|p| {
                (
                    str_of(&p["name"], "port name").to_owned(),
                    int_of(&p["containerPort"], "containerPort"),
                )
            })
            .collect();
        workloads.push(Workload {
            doc,
            pod_labels,
            config,
            ports,
        });
    }
    assert!(workloads.len() >= 2, "origins and edges");

    for w in &workloads {
        let label = w.doc.label();
        let cfg = &w.config;
        let pod = w.pod();
        let c = w.container();
        assert_eq!(
            cfg.log.target,
            LogTarget::Stdout,
            "{label}: logs to standard output (kubectl logs)"
        );

        // ports: the config's listeners are the container ports
        let port_of = |list: &[std::net::SocketAddr]| i64::from(list[0].port());
        assert_eq!(
            w.ports.get("rtmp"),
            Some(&port_of(&cfg.rtmp.listen)),
            "{label}: rtmp"
        );
        assert_eq!(
            w.ports.get("http"),
            Some(&port_of(&cfg.http_server.listen)),
            "{label}: http"
        );
        assert!(cfg.http_api.enabled, "{label}: /healthz needs [http_api]");
        let api = port_of(&cfg.http_api.listen);
        assert_eq!(w.ports.get("api"), Some(&api), "{label}: api");

        // probes on /healthz of the API port
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = &c[probe]["httpGet"];
            assert_eq!(
                get["path"].as_str(),
                Some("/healthz"),
                "{label}: {probe} path"
            );
            assert_eq!(w.resolve_port(&get["port"]), api, "{label}: {probe} port");
        }

        // graceful quit: SIGTERM starts it, the pod outlives it, and the
        // liveness probe cannot restart the container while /healthz says 503
        assert!(cfg.server.force_grace_quit, "{label}: SIGTERM must drain");
        let grace = cfg.server.grace_start_wait_ms + cfg.server.grace_final_wait_ms;
        let tgps = int_of(
            &pod["terminationGracePeriodSeconds"],
            "terminationGracePeriodSeconds",
        );
        let tgps = Duration::from_secs(u64::try_from(tgps).expect("positive"));
        assert!(
            tgps >= grace + Duration::from_secs(1),
            "{label}: terminationGracePeriodSeconds {tgps:?} < graceful quit {grace:?} + 1 s"
        );
        let live = &c["livenessProbe"];
        let period = live["periodSeconds"].as_i64().unwrap_or(10);
        let failures = live["failureThreshold"].as_i64().unwrap_or(3);
        let to_fail = Duration::from_secs(u64::try_from(period * failures).expect("positive"));
        assert!(
            to_fail > tgps,
            "{label}: liveness fails after {to_fail:?}, within the termination grace {tgps:?}"
        );
        assert_eq!(
            c["readinessProbe"]["failureThreshold"].as_i64(),
            Some(1),
            "{label}: one 503 takes the pod out of its Services"
        );
        let ready_after = Duration::from_secs(
            u64::try_from(c["readinessProbe"]["periodSeconds"].as_i64().unwrap_or(10))
                .expect("positive"),
        );
        assert!(
            ready_after < cfg.server.grace_start_wait_ms,
            "{label}: readiness must notice the 503 before the listeners close"
        );

        // shards: as many as the CPU limit, their io_uring memory within memlock
        let cpu = millicores(&c["resources"]["limits"]["cpu"]);
        assert!(
            !c["resources"]["requests"]["cpu"].is_badvalue()
                && !c["resources"]["requests"]["memory"].is_badvalue(),
            "{label}: resource requests"
        );
        let shards = i64::try_from(cfg.server.shards).expect("shards");
        assert_eq!(shards * 1000, cpu, "{label}: server.shards = the CPU limit");
        let locked = cfg.server.shards as u64 * cfg.server.io_memory as u64;
        assert!(
            locked <= DEFAULT_MEMLOCK,
            "{label}: shards x io_memory = {locked} bytes > the 8 MiB default memlock"
        );

        // the image's user, not root
        let sc = &pod["securityContext"];
        assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{label}");
        assert_eq!(
            sc["runAsUser"].as_i64(),
            Some(image_uid),
            "{label}: the image's user"
        );
    }

    // Services and PodDisruptionBudgets select pods of a workload, by ports they have
    for doc in docs
        .iter()
        .filter(|d| d.kind() == "Service" || d.kind() == "PodDisruptionBudget")
    {
        let label = doc.label();
        let selector = match doc.kind() {
            "Service" => string_map(&doc.yaml["spec"]["selector"], "selector"),
            _ => string_map(&doc.yaml["spec"]["selector"]["matchLabels"], "matchLabels"),
        };
        let targets: Vec<&Workload> = workloads
            .iter()
            .filter(|w| selects(&selector, &w.pod_labels))
            .collect();
        assert_eq!(targets.len(), 1, "{label} selects the pods of one workload");
        if doc.kind() == "Service" {
            for p in list(&doc.yaml["spec"]["ports"]) {
                let target = if p["targetPort"].is_badvalue() {
                    &p["port"]
                } else {
                    &p["targetPort"]
                };
                targets[0].resolve_port(target);
            }
        }
    }

    // the origin cluster: the StatefulSet's pods by their stable names
    let origins: Vec<&Workload> = workloads
        .iter()
        .filter(|w| w.doc.kind() == "StatefulSet")
        .collect();
    assert_eq!(origins.len(), 1, "one origin StatefulSet");
    let origin = origins[0];
    let sts = origin.doc.name();
    let service = str_of(&origin.doc.yaml["spec"]["serviceName"], "serviceName");
    let headless = docs
        .iter()
        .find(|d| d.kind() == "Service" && d.name() == service)
        .unwrap_or_else(|| panic!("the StatefulSet's governing Service {service}"));
    assert_eq!(
        headless.yaml["spec"]["clusterIP"].as_str(),
        Some("None"),
        "{service} is headless"
    );
    let replicas = int_of(&origin.doc.yaml["spec"]["replicas"], "replicas");
    let pods = |port: u16| -> Vec<String> {
        (0..replicas)
            .map(|i| format!("{sts}-{i}.{service}:{port}"))
            .collect()
    };
    let oc = &origin.config;
    assert_eq!(
        oc.vhost("__defaultVhost__").cluster.mode,
        ClusterMode::Local
    );
    assert_eq!(
        oc.vhost("__defaultVhost__").cluster.coworkers,
        pods(oc.http_api.listen[0].port()),
        "origins list every origin pod's API as coworkers"
    );
    assert_eq!(
        oc.server.advertise_host,
        format!("{sts}-0.{service}"),
        "each origin advertises its own stable name"
    );
    let edges: Vec<&Workload> = workloads
        .iter()
        .filter(|w| w.doc.kind() == "Deployment")
        .collect();
    assert!(!edges.is_empty());
    for edge in edges {
        let cluster = &edge.config.vhost("__defaultVhost__").cluster;
        assert_eq!(cluster.mode, ClusterMode::Remote, "{}", edge.doc.label());
        assert_eq!(
            cluster.origins,
            pods(oc.rtmp.listen[0].port()),
            "{}: edges pull from every origin pod",
            edge.doc.label()
        );
    }
}
