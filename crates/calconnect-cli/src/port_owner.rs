//! "Address in use": which process holds a port, and the one-line error naming the setting to
//! change.

use std::net::SocketAddr;

/// Whether `err`'s chain holds an "address in use" I/O error.
pub fn is_addr_in_use(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// `cannot listen on <addr>: <who> already listens there: stop it, or <setting>`.
pub fn message(addr: SocketAddr, setting: &str) -> String {
    format!(
        "cannot listen on {addr}: {} already listens there: stop it, or {setting}",
        describe(addr.port())
    )
}

/// The process listening on `port`, as far as this machine tells: its name and pid on Linux
/// (for processes of the same user), else "another process".
pub fn describe(port: u16) -> String {
    match owner(port) {
        Some((pid, name)) if name.starts_with("calconnect") => {
            format!("another calconnect process (pid {pid}, `{name}`)")
        }
        Some((pid, name)) => format!("process `{name}` (pid {pid})"),
        None => "another process".to_owned(),
    }
}

/// Linux: the listening socket's inode from `/proc/net/tcp{,6}`, then the process holding it.
fn owner(port: u16) -> Option<(u32, String)> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|target| target.to_str().map(|t| wanted.iter().any(|w| w == t)))
                .unwrap_or(false)
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|n| n.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned());
            return Some((pid, name));
        }
    }
    None
}

/// Inodes of the sockets in LISTEN state (`0A`) on `port` in one `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let port_hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?;
            (local.ends_with(&port_hex) && *state == "0A" && *inode != "0")
                .then(|| (*inode).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_sockets_in_a_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 43210 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 43999 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:15B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_inodes(table, 8080), vec!["43210"]);
        assert_eq!(listening_inodes(table, 5555), vec!["51234"]);
        assert!(listening_inodes(table, 9).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn names_this_process_as_the_holder_of_its_own_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (pid, _name) = owner(port).expect("our own socket is found");
        assert_eq!(pid, std::process::id());
    }
}
