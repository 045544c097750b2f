//! `web-serve`: a directory over HTTP on localhost, precompressed copies first (as a static
//! host would send them).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Serves `dir` on 127.0.0.1:`port` until killed.
pub(crate) fn serve(dir: &Path, port: u16) -> Result<()> {
    if !dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: run `cargo run -p xtask -- web-build` first",
            dir.display()
        );
    }
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    println!("serving {} on http://127.0.0.1:{port}/", dir.display());
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        // The request's headers: only Accept-Encoding matters here.
        let mut accepts = String::new();
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            if let Some((key, value)) = header.split_once(':')
                && key.eq_ignore_ascii_case("accept-encoding")
            {
                accepts = value.trim().to_ascii_lowercase();
            }
            header.clear();
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or("/");
        let name = if path == "/" {
            "index.html"
        } else {
            path.trim_start_matches('/')
        };
        let file = dir.join(name);
        let safe = !name.contains("..") && file.is_file();
        // The precompressed copy the browser accepts, as a static host would serve it.
        let encoded = ["br", "gzip"].into_iter().find_map(|encoding| {
            let ext = if encoding == "br" { "br" } else { "gz" };
            let copy = dir.join(format!("{name}.{ext}"));
            (safe && accepts.contains(encoding) && copy.is_file()).then_some((encoding, copy))
        });
        let (status, body) = match (&encoded, safe) {
            (Some((_, copy)), _) => ("200 OK", std::fs::read(copy).unwrap_or_default()),
            (None, true) => ("200 OK", std::fs::read(&file).unwrap_or_default()),
            (None, false) => ("404 Not Found", b"not found".to_vec()),
        };
        let mime = match file.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript",
            Some("json") => "application/json",
            Some("wasm") => "application/wasm",
            Some("png") => "image/png",
            _ => "application/octet-stream",
        };
        let encoding = encoded.map_or(String::new(), |(e, _)| format!("Content-Encoding: {e}\r\n"));
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\n{encoding}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    }
    Ok(())
}
