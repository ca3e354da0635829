//! Starts the real `quill` binary for end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "phc_e2e_token";
pub const KEY: &str = "phx_e2e_key";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_quill")
}

/// A running server on a free loopback port, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin())
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .env("QUILL_PROJECT_TOKEN", TOKEN)
            .env("QUILL_PERSONAL_API_KEY", KEY)
            .env("QUILL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start quill serve");
        let server = Server {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http::request("GET", &self.url("/_readiness"), &[], &[]) {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server on port {} never became ready", self.port);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait for quill");
        std::mem::forget(self);
        status
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod http {
    pub fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("http client")
    }

    pub struct Reply {
        pub status: u16,
        pub headers: reqwest::header::HeaderMap,
        pub body: Vec<u8>,
    }

    impl Reply {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|_| {
                panic!(
                    "not JSON (status {}): {}",
                    self.status,
                    String::from_utf8_lossy(&self.body)
                )
            })
        }

        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
    }

    pub fn request(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = client().request(method, url).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes()?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// GET under the personal key.
pub fn api_get(server: &Server, path: &str) -> serde_json::Value {
    let auth = format!("Bearer {KEY}");
    let r = http::request("GET", &server.url(path), &[("Authorization", &auth)], &[])
        .expect("api request");
    assert_eq!(
        r.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// Every result of a paginated list, following `next` links.
fn all_pages(server: &Server, first: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut path = first.to_string();
    loop {
        let page = api_get(server, &path);
        out.extend(page["results"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => path = next[next.find("/api/").unwrap()..].to_string(),
            None => return out,
        }
    }
}

/// Every event of project 1.
pub fn all_events(server: &Server) -> Vec<serde_json::Value> {
    all_pages(server, "/api/projects/1/events?limit=5000")
}

/// Every person of project 1.
pub fn all_persons(server: &Server) -> Vec<serde_json::Value> {
    all_pages(server, "/api/projects/1/persons?limit=5000")
}

/// POST a body to a capture route.
pub fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> http::Reply {
    http::request("POST", &server.url(path), headers, body).expect("capture request")
}

/// Gzips a body, as the SDKs do.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Percent-encodes a query or form value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
