//! A real headless Chromium driven through its WebDriver (`chromedriver`), started in a
//! temporary directory on a free loopback port and stopped on drop, like the `sshd` harness.
//!
//! The calls are blocking (the harness owns a small runtime), so browser tests read like the
//! other end-to-end tests. A missing `chromium` or `chromedriver` is a failure with the reason,
//! never a skip.

// Each test binary that includes the harness uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::common::{free_port, wait_for_port};

/// The Chromium binary: `GATEHOUSE_CHROMIUM`, or the first of the usual names on `PATH`.
fn chromium_bin() -> PathBuf {
    if let Ok(path) = std::env::var("GATEHOUSE_CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(found) = which(name) {
            return found;
        }
    }
    panic!(
        "no chromium on PATH: install the Debian packages chromium and chromium-driver (or set GATEHOUSE_CHROMIUM)"
    );
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A browser session.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// The driver's port, for the one command fantoccini does not speak (the browser log).
    port: u16,
    /// Where screenshots and the driver's log go.
    pub dir: PathBuf,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium that accepts the console's self-signed
    /// certificate, with its profile and logs under `dir`.
    pub fn start(dir: &Path) -> Browser {
        std::fs::create_dir_all(dir).unwrap();
        let driver_bin = which("chromedriver").unwrap_or_else(|| {
            panic!("no chromedriver on PATH: install the Debian package chromium-driver")
        });
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!(
                "--log-path={}",
                dir.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        wait_for_port(port, Duration::from_secs(20));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let profile = dir.join("profile");
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium_bin(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--window-size=1280,900", "--force-device-scale-factor=1", "--hide-scrollbars",
                    "--lang=en-US", format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = runtime
            .block_on(async {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
            })
            .unwrap_or_else(|e| {
                panic!(
                    "chromium did not start through chromedriver: {e}\n{}",
                    std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default()
                )
            });
        Browser {
            runtime,
            client: Some(client),
            driver,
            port,
            dir: dir.to_owned(),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser is open")
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The address the browser shows now.
    pub fn url(&self) -> String {
        self.runtime
            .block_on(self.client().current_url())
            .unwrap()
            .to_string()
    }

    /// The page's HTML as the browser has it now.
    pub fn source(&self) -> String {
        self.runtime.block_on(self.client().source()).unwrap()
    }

    /// Waits up to 10 s for an element matching `css`.
    pub fn wait_for(&self, css: &str) -> Element {
        let client = self.client();
        self.runtime
            .block_on(async {
                client
                    .wait()
                    .at_most(Duration::from_secs(10))
                    .for_element(Locator::Css(css))
                    .await
            })
            .unwrap_or_else(|e| {
                panic!("no element {css:?} appeared: {e}\npage:\n{}", self.source())
            })
    }

    /// Every element matching `css` now.
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .unwrap()
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) {
        let element = self.wait_for(css);
        self.runtime
            .block_on(element.click())
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the element matching `css`.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css);
        self.runtime
            .block_on(element.send_keys(text))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The visible text of the element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let element = self.wait_for(css);
        self.runtime.block_on(element.text()).unwrap()
    }

    /// An attribute of the element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.wait_for(css);
        self.runtime.block_on(element.attr(name)).unwrap()
    }

    /// Where the element matching `css` is in the viewport, which is what a screenshot shows:
    /// x, y, width, height in CSS pixels (screenshots are taken at a device pixel ratio of 1).
    /// The element is scrolled into view first, and the rectangle is cut to the viewport.
    pub fn rect(&self, css: &str) -> (u32, u32, u32, u32) {
        self.wait_for(css);
        let found = self.script_with(
            "const e = document.querySelector(arguments[0]);
             e.scrollIntoView({ block: 'nearest', inline: 'nearest' });
             const r = e.getBoundingClientRect();
             const x0 = Math.max(0, Math.ceil(r.left)), y0 = Math.max(0, Math.ceil(r.top));
             const x1 = Math.min(window.innerWidth, Math.floor(r.right));
             const y1 = Math.min(window.innerHeight, Math.floor(r.bottom));
             return [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)];",
            vec![serde_json::json!(css)],
        );
        let n = |i: usize| {
            found[i]
                .as_u64()
                .unwrap_or_else(|| panic!("rect of {css}: {found}")) as u32
        };
        (n(0), n(1), n(2), n(3))
    }

    /// Runs `script` in the page and returns its result (a returned promise is waited for).
    pub fn script(&self, script: &str) -> serde_json::Value {
        self.script_with(script, vec![])
    }

    /// Runs `script` with `args` as `arguments` and returns its result.
    pub fn script_with(&self, script: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.runtime
            .block_on(self.client().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits up to `limit` for `check` to hold, polling every 100 ms.
    pub fn until(&self, what: &str, limit: Duration, mut check: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + limit;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {limit:?}\npage:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's console messages since the last call (errors, warnings, failed loads), as
    /// chromedriver's log entries (`level`, `message`, `source`).
    pub fn console(&self) -> Vec<serde_json::Value> {
        use std::io::{Read, Write};
        let session = self
            .runtime
            .block_on(self.client().session_id())
            .unwrap()
            .expect("a session");
        let body = r#"{"type":"browser"}"#;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "POST /session/{session}/se/log HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // The driver keeps the connection open: read until the body is complete.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        let body = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "the driver closed: {}",
                String::from_utf8_lossy(&response)
            );
            response.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&response).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            match length {
                Some(length) if body.len() >= length => break body[..length].to_owned(),
                None if body.ends_with("\r\n0\r\n\r\n") => break body.to_owned(),
                _ => {}
            }
        };
        // A chunked body: the JSON is between the first chunk size and the last chunk.
        let json = body
            .find('{')
            .and_then(|start| body.rfind('}').map(|end| &body[start..=end]))
            .unwrap_or_else(|| panic!("no browser log in {body:?}"));
        let value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("browser log {json:?}: {e}"));
        value["value"]
            .as_array()
            .unwrap_or_else(|| panic!("browser log: {value}"))
            .clone()
    }

    /// Saves a screenshot as `name`.png in the browser's directory and returns the image.
    pub fn screenshot(&self, name: &str) -> Screenshot {
        let png = self.runtime.block_on(self.client().screenshot()).unwrap();
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        Screenshot::decode(&png, path)
    }
}

impl Browser {
    /// Copies the screenshots and the driver's log out of the temporary directory, which goes
    /// with the test, to `target/tmp/browser/TEST/`: after a failure, or always when
    /// `GATEHOUSE_KEEP_SCREENSHOTS` is set.
    fn keep_evidence(&self) {
        if !std::thread::panicking() && std::env::var_os("GATEHOUSE_KEEP_SCREENSHOTS").is_none() {
            return;
        }
        let test = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .replace("::", "-");
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("browser")
            .join(test);
        let _ = std::fs::remove_dir_all(&kept);
        if std::fs::create_dir_all(&kept).is_err() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "png" || e == "log") {
                let _ = std::fs::copy(&path, kept.join(entry.file_name()));
            }
        }
        eprintln!("screenshots kept in {}", kept.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.keep_evidence();
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A decoded screenshot, to check what it shows.
pub struct Screenshot {
    /// Where it was saved.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    rgba: Vec<u8>,
}

impl Screenshot {
    fn decode(png_bytes: &[u8], path: PathBuf) -> Screenshot {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        // Palette, 16-bit and low-bit images become 8-bit grey or colour samples.
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().expect("a PNG screenshot");
        let mut buf = vec![0; reader.output_buffer_size().expect("a sane PNG size")];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        let mut rgba = Vec::with_capacity((info.width * info.height * 4) as usize);
        for px in buf[..info.buffer_size()].chunks(channels) {
            let (r, g, b) = match channels {
                1 | 2 => (px[0], px[0], px[0]),
                _ => (px[0], px[1], px[2]),
            };
            rgba.extend_from_slice(&[r, g, b, 255]);
        }
        Screenshot {
            path,
            width: info.width,
            height: info.height,
            rgba,
        }
    }

    /// The colour at (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 4) as usize;
        [self.rgba[i], self.rgba[i + 1], self.rgba[i + 2]]
    }

    /// How many pixels inside the rectangle are close to `colour` (each channel within 40).
    pub fn count_near(&self, rect: (u32, u32, u32, u32), colour: [u8; 3]) -> usize {
        let (x0, y0, w, h) = rect;
        let mut n = 0;
        for y in y0..(y0 + h).min(self.height) {
            for x in x0..(x0 + w).min(self.width) {
                let p = self.pixel(x, y);
                if p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 40) {
                    n += 1;
                }
            }
        }
        n
    }
}
