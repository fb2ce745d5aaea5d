//! The nginx floor: a do-nothing `proxy_pass` hop with keep-alive on both sides, the real
//! floor a C proxy sets. nginx runs as in production (a master and its workers), with as
//! many workers as the gateway has server threads (one per core, `reuseport` listeners, as
//! the gateway's `SO_REUSEPORT` shards), so both use the same cores the same way; the CPU of
//! the master and every worker is counted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::procs::{free_port, wait_listening, Process};

/// How to install nginx when it is missing.
pub const INSTALL_HINT: &str =
    "nginx not found: install it (Debian/Ubuntu: `apt-get install nginx-light`) to measure the nginx floor; using the hyper floor";

/// The nginx binary: on PATH, or Debian's /usr/sbin/nginx.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nginx");
        debian.is_file().then_some(debian)
    })
}

/// An upstream nginx reaches over TLS, and the CA certificate it trusts.
pub struct TlsUpstream<'a> {
    pub addr: SocketAddr,
    pub ca_file: &'a Path,
}

/// A running nginx: its process tree, the plain-upstream listener and the TLS one.
pub struct Nginx {
    pub process: Process,
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
}

/// The generated nginx.conf (also quoted in docs/benchmarks.md).
pub fn config(
    dir: &Path,
    workers: usize,
    nofile: u64,
    listen: SocketAddr,
    upstream: SocketAddr,
    tls: Option<(SocketAddr, &TlsUpstream<'_>)>,
) -> String {
    let dir = dir.display();
    // Every request's settings: HTTP/1.1 upstream keep-alive, nothing buffered to disk.
    let proxy = "proxy_http_version 1.1;\n            proxy_set_header Connection \"\";";
    let mut conf = format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_max_body_size 64m;
    client_body_buffer_size 2m;
    upstream sim {{
        server {upstream};
        keepalive 1024;
        keepalive_requests 100000000;
    }}
    server {{
        listen {listen} reuseport;
        location / {{
            proxy_pass http://sim;
            {proxy}
        }}
        location ~ /converse-stream$ {{
            proxy_pass http://sim;
            {proxy}
            proxy_buffering off;
        }}
    }}
"#,
        connections = nofile / 2,
    );
    if let Some((listen_tls, tls)) = tls {
        conf.push_str(&format!(
            r#"    upstream sim_tls {{
        server {upstream};
        keepalive 1024;
        keepalive_requests 100000000;
    }}
    server {{
        listen {listen_tls} reuseport;
        location / {{
            proxy_pass https://sim_tls;
            {proxy}
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
        }}
    }}
"#,
            upstream = tls.addr,
            ca = tls.ca_file.display(),
        ));
    }
    conf.push_str("}\n");
    conf
}

/// Writes the config into `dir` and starts nginx on it.
pub async fn start(
    binary: &Path,
    dir: &Path,
    workers: usize,
    nofile: u64,
    upstream: SocketAddr,
    tls: Option<&TlsUpstream<'_>>,
) -> Result<Nginx, String> {
    let addr = free_port()?;
    let tls_addr = match tls {
        Some(_) => Some(free_port()?),
        None => None,
    };
    let conf_path = dir.join("nginx.conf");
    let conf = config(dir, workers, nofile, addr, upstream, tls_addr.zip(tls));
    std::fs::write(&conf_path, conf).map_err(|e| format!("nginx.conf: {e}"))?;
    let args = |command: &mut Command| {
        command
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path);
    };
    let mut run = Command::new(binary);
    args(&mut run);
    let child = run
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?;
    let mut stop = Command::new(binary);
    args(&mut stop);
    stop.args(["-s", "stop"]);
    let process = Process::new("nginx", child).with_stop(stop);
    wait_listening("nginx", addr).await.map_err(|e| {
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        format!("{e}: {log}")
    })?;
    if let Some(tls_addr) = tls_addr {
        wait_listening("nginx (TLS upstream)", tls_addr).await?;
    }
    Ok(Nginx {
        process,
        addr,
        tls_addr,
    })
}
