//! The three-node cluster of `docker-compose.yml`, from an image built here (`docker/build-image.sh`: FROM
//! scratch, the hoard binary and the libraries it links), formed as the README walks through it. The metadata
//! leader is cut off with `docker network disconnect` while clients write through the other two, then
//! connected again: nothing acknowledged is lost, there is at most one leader per term, and the cut node
//! catches up (every acknowledged object reads back through it).
//!
//! Needs Docker and docker-compose; where they do not work the test says so and passes without running
//! (`.ci/run` says so too). `HOARD_SKIP_DOCKER=1` skips it on purpose.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use hoard_it::client_for;
use hoard_it::free_port;
use hoard_it::hoard_bin;
use hoard_it::hoard_cli;
use hoard_it::http_get;
use hoard_it::pattern;
use hoard_it::ACCESS_KEY;
use hoard_it::SECRET_KEY;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docker_works() -> Result<(), String> {
    if std::env::var("HOARD_SKIP_DOCKER").is_ok_and(|v| v == "1") {
        return Err("HOARD_SKIP_DOCKER=1".into());
    }
    let works = |cmd: &str, arg: &str| Command::new(cmd).arg(arg).output().map(|o| o.status.success()).unwrap_or(false);
    if !works("docker", "info") {
        return Err("`docker info` fails (no Docker engine here)".into());
    }
    if !works("docker-compose", "version") {
        return Err("no docker-compose".into());
    }
    Ok(())
}

/// One compose project: its containers, network and volumes go when it is dropped, and the image with them.
struct Project {
    name: String,
    image: String,
    env: Vec<(String, String)>,
    ports: [u16; 3],
    _dir: tempfile::TempDir,
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--timeout", "5"]);
        let _ = Command::new("docker").args(["rmi", "-f", &self.image]).output();
    }
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        let file = repo().join("docker-compose.yml");
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(&file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("running docker-compose")
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(out.status.success(), "docker-compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `hoard <args>` in a one-off container of `service` (its data volume mounted).
    fn hoard(&self, service: &str, args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "-T", service];
        all.extend_from_slice(args);
        self.compose(&all)
    }

    fn container(&self, service: &str) -> String {
        self.compose_ok(&["ps", "-q", service]).trim().to_string()
    }

    fn network(&self) -> String {
        format!("{}_hoard", self.name)
    }

    fn addr(&self, node: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[node]))
    }

    // Containers take real time: the wall clock bounds them.
    #[allow(clippy::disallowed_methods)]
    fn wait_ready(&self, node: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while http_get(self.addr(node), "/health/ready").is_none_or(|(s, _)| s != 200) {
            if std::time::Instant::now() > deadline {
                self.print_logs();
                panic!("node {} never became ready", node + 1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every node's log, for a failure's report.
    fn print_logs(&self) {
        for n in 1..=3 {
            let logs = self.compose(&["logs", "--no-color", "--tail", "80", &format!("hoard{n}")]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
    }

    /// Node `node`'s view of the Raft group: (term, leader), if it answers.
    fn raft(&self, node: usize) -> Option<(u64, Option<u64>)> {
        let endpoint = format!("http://{}", self.addr(node));
        let out = hoard_cli(&["cluster", "--endpoint", &endpoint, "status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let raft = &status["nodes"][0]["raft"];
        Some((raft["term"].as_u64()?, raft["leader"].as_u64()))
    }

    fn voters(&self, node: usize) -> usize {
        let endpoint = format!("http://{}", self.addr(node));
        let out = hoard_cli(&["cluster", "--endpoint", &endpoint, "status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status["members"].as_array().map(|m| m.iter().filter(|m| m["voter"] == true).count()).unwrap_or(0)
    }

    fn client(&self, node: usize) -> aws_sdk_s3::Client {
        client_for(&format!("http://{}", self.addr(node)), ACCESS_KEY, SECRET_KEY)
    }
}

fn token_in(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "no token: {text} {}", String::from_utf8_lossy(&out.stderr));
    text.split_whitespace().find(|w| w.starts_with("hoard1.")).expect("a join token").to_string()
}

/// Writes `w<node>-<n>` through `node` until `stop`, recording each acknowledged key.
async fn writer(client: aws_sdk_s3::Client, node: usize, stop: Arc<Mutex<bool>>, acked: Arc<Mutex<Vec<String>>>) {
    let mut n = 0u64;
    while !*stop.lock().unwrap() {
        let key = format!("w{node}-{n}");
        let body = pattern(node as u64 * 1_000_000 + n, 16 * 1024);
        let put = client.put_object().bucket("docker").key(&key).body(body.into()).send();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(40), put).await {
            acked.lock().unwrap().push(key);
        }
        n += 1;
    }
}

fn seed_of(key: &str) -> u64 {
    let (node, n) = key.trim_start_matches('w').split_once('-').unwrap();
    node.parse::<u64>().unwrap() * 1_000_000 + n.parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Containers take real time: the wall clock bounds them.
#[allow(clippy::disallowed_methods)]
async fn a_cut_off_leader_loses_nothing_acknowledged_and_catches_up() {
    if let Err(why) = docker_works() {
        eprintln!("SKIPPED docker_cluster: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(&key, [0x6b; 32]).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let pid = std::process::id();
    let image = format!("hoard-it:{pid}");
    let built = Command::new("bash")
        .arg(repo().join("docker/build-image.sh"))
        .arg(hoard_bin())
        .arg(&image)
        .output()
        .expect("running docker/build-image.sh");
    assert!(built.status.success(), "building the image: {}", String::from_utf8_lossy(&built.stderr));
    let ports = [free_port(), free_port(), free_port()];
    let env = vec![
        ("HOARD_IMAGE".to_string(), image.clone()),
        ("HOARD_ROOT_ACCESS_KEY".to_string(), ACCESS_KEY.to_string()),
        ("HOARD_ROOT_SECRET_KEY".to_string(), SECRET_KEY.to_string()),
        ("HOARD_MASTER_KEY".to_string(), key.display().to_string()),
        ("HOARD_PORT1".to_string(), ports[0].to_string()),
        ("HOARD_PORT2".to_string(), ports[1].to_string()),
        ("HOARD_PORT3".to_string(), ports[2].to_string()),
    ];
    let p = Project { name: format!("hoardit{pid}"), image, env, ports, _dir: dir };

    // Formed as the README says.
    let first = token_in(&p.hoard("hoard1", &["cluster", "init", "--data-dir", "/data", "--node-addr", "hoard1:7000"]));
    p.compose_ok(&["up", "-d", "hoard1"]);
    p.wait_ready(0);
    let join = |service: &str, token: &str| {
        let addr = format!("{service}:7000");
        let args =
            ["cluster", "join", "--data-dir", "/data", "--node-addr", &addr, "--peer", "hoard1:7000", "--token", token];
        p.hoard(service, &args)
    };
    let out = join("hoard2", &first);
    assert!(out.status.success(), "join: {}", String::from_utf8_lossy(&out.stderr));
    let second = token_in(&p.hoard("hoard1", &["cluster", "token", "--data-dir", "/data"]));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = join("hoard3", &second);
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("unknown") && std::time::Instant::now() < deadline, "join: {err}");
        std::thread::sleep(Duration::from_millis(300));
    }
    p.compose_ok(&["up", "-d", "hoard2", "hoard3"]);
    p.wait_ready(1);
    p.wait_ready(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while p.voters(0) != 3 {
        assert!(std::time::Instant::now() < deadline, "three voters never formed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (term, leader) = p.raft(0).expect("node 1 answers");
    let leader = leader.expect("a leader") as usize - 1;
    let others: Vec<usize> = (0..3).filter(|n| *n != leader).collect();
    p.client(others[0]).create_bucket().bucket("docker").send().await.unwrap();

    // Clients write through the two other nodes throughout.
    let stop = Arc::new(Mutex::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> =
        others.iter().map(|n| tokio::spawn(writer(p.client(*n), *n + 1, stop.clone(), acked.clone()))).collect();
    let count = |acked: &Arc<Mutex<Vec<String>>>| acked.lock().unwrap().len();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&acked) < 10 {
        assert!(std::time::Instant::now() < deadline, "no writes before the cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Cut the leader off; watch the others elect a new one and keep taking writes.
    let service = format!("hoard{}", leader + 1);
    let container = p.container(&service);
    let cut = Command::new("docker").args(["network", "disconnect", &p.network(), &container]).output().unwrap();
    assert!(cut.status.success(), "{}", String::from_utf8_lossy(&cut.stderr));
    let mut seen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::from([(term, BTreeSet::from([leader as u64 + 1]))]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut since_new: Option<usize> = None;
    loop {
        for n in &others {
            if let Some((t, Some(l))) = p.raft(*n) {
                seen.entry(t).or_default().insert(l);
                if l != leader as u64 + 1 && since_new.is_none() {
                    since_new = Some(count(&acked));
                }
            }
        }
        if since_new.is_some_and(|at| count(&acked) >= at + 10) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no new leader taking writes after the cut: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Heal: the cut node comes back as a follower of the new leader and catches up.
    let heal = Command::new("docker")
        .args(["network", "connect", "--alias", &service, &p.network(), &container])
        .output()
        .unwrap();
    assert!(heal.status.success(), "{}", String::from_utf8_lossy(&heal.stderr));
    p.wait_ready(leader);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let views: Vec<_> = (0..3).filter_map(|n| p.raft(n)).collect();
        for (t, l) in views.iter().filter_map(|(t, l)| l.map(|l| (*t, l))) {
            seen.entry(t).or_default().insert(l);
        }
        if views.len() == 3 && views.iter().all(|v| v == &views[0]) && views[0].0 > term {
            break;
        }
        if std::time::Instant::now() > deadline {
            p.print_logs();
            panic!("the cut node never rejoined: {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    *stop.lock().unwrap() = true;
    for w in writers {
        w.await.unwrap();
    }

    for (t, leaders) in &seen {
        assert!(leaders.len() <= 1, "term {t} had leaders {leaders:?}");
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("{} writes acknowledged; leaders by term: {seen:?}", acked.len());
    for n in 0..3 {
        let client = p.client(n);
        for key in &acked {
            let got = hoard_it::get(&client, "docker", key).await;
            assert!(got == pattern(seed_of(key), 16 * 1024), "{key} through node {}", n + 1);
        }
    }
}
