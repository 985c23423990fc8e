//! The processes `/proc` shows (Linux); elsewhere nothing is known.

/// Whether a compile of this call is at work: a live child of the server, or a live member
/// of the call's own process group besides its leader, the sccache client (a compile the
/// client runs itself after losing its server), the server and its children excepted.
/// `None` when the server cannot be found and nothing else is seen.
pub fn compile_at_work(server: Option<u32>, call: u32, compiler: &str) -> Option<bool> {
    let table = Table::read()?;
    work_in(&table, server, call, compiler)
}

pub(super) fn work_in(
    table: &Table,
    server: Option<u32>,
    call: u32,
    compiler: &str,
) -> Option<bool> {
    let server = server.filter(|&s| table.has(s));
    let mut group = table.group(call, server);
    if group.any(|pid| table.comm(pid) == Some(compiler)) {
        return Some(true);
    }
    let server = server?;
    Some(table.has_live_child(server))
}

/// What `/proc/PID/stat` calls a process running `program`: its file name, cut to the 15
/// bytes the kernel keeps.
pub fn comm_of(program: &std::ffi::OsStr) -> String {
    let name = std::path::Path::new(program)
        .file_name()
        .unwrap_or(program)
        .as_encoded_bytes();
    String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned()
}

/// Whether `pid` exists and is not a zombie.
#[cfg(target_os = "linux")]
pub fn is_live(pid: u32) -> bool {
    Table::read().is_some_and(|t| t.has(pid))
}

/// One process: pid, parent, process group, and whether it is alive (not a zombie).
#[derive(Debug, Clone)]
pub struct Entry {
    pub comm: String,
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub live: bool,
}

pub struct Table(pub Vec<Entry>);

impl Table {
    #[cfg(target_os = "linux")]
    pub fn read() -> Option<Table> {
        let mut entries = Vec::new();
        // /proc/PID/task/*/children needs CONFIG_PROC_CHILDREN; every process's stat is
        // always there.
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(e) = parse_stat(pid, &stat) {
                entries.push(e);
            }
        }
        Some(Table(entries))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Option<Table> {
        None
    }

    pub fn comm(&self, pid: u32) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.pid == pid)
            .map(|e| e.comm.as_str())
    }

    pub fn has(&self, pid: u32) -> bool {
        self.0.iter().any(|e| e.pid == pid && e.live)
    }

    pub fn has_live_child(&self, pid: u32) -> bool {
        self.0.iter().any(|e| e.ppid == pid && e.live)
    }

    /// Live descendants of `root`, parents before children.
    pub fn descendants(&self, root: u32) -> Vec<u32> {
        let mut found = vec![root];
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(
                self.0
                    .iter()
                    .filter(|e| e.ppid == parent && e.live && !found.contains(&e.pid))
                    .map(|e| e.pid)
                    .collect::<Vec<_>>(),
            );
            i += 1;
        }
        found.remove(0);
        found
    }

    /// Live members of the call's process group other than its leader, and other than the
    /// sccache server (which a client that started it may have left in the group) and the
    /// server's children.
    pub fn group(&self, call: u32, server: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        let mut theirs = server.map_or_else(Vec::new, |s| self.descendants(s));
        theirs.extend(server);
        self.0
            .iter()
            .filter(move |e| e.pgrp == call && e.pid != call && e.live && !theirs.contains(&e.pid))
            .map(|e| e.pid)
    }
}

/// Reads `/proc/PID/stat`: `pid (comm) state ppid pgrp …`, where comm may hold anything.
pub fn parse_stat(pid: u32, stat: &str) -> Option<Entry> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let after = &stat[close + 1..];
    let mut f = after.split_whitespace();
    let state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Entry {
        comm,
        pid,
        ppid,
        pgrp,
        live: !matches!(state, "Z" | "X" | "x"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(u32, u32, u32, bool)]) -> Table {
        Table(
            rows.iter()
                .map(|&(pid, ppid, pgrp, live)| Entry {
                    comm: if pid == 33 { "sleep" } else { "rustc" }.into(),
                    pid,
                    ppid,
                    pgrp,
                    live,
                })
                .collect(),
        )
    }

    #[test]
    fn work_is_a_live_server_child_or_a_live_member_of_the_calls_group() {
        // 10: the sccache client leading the call's group; 20: the server.
        let idle = table(&[(10, 1, 10, true), (20, 1, 20, true), (21, 20, 20, false)]);
        assert_eq!(work_in(&idle, Some(20), 10, "rustc"), Some(false));
        // The server is gone, or was never found: nothing is known.
        assert_eq!(work_in(&idle, Some(99), 10, "rustc"), None);
        assert_eq!(work_in(&idle, None, 10, "rustc"), None);
        let compiling = table(&[(10, 1, 10, true), (20, 1, 20, true), (21, 20, 20, true)]);
        assert_eq!(work_in(&compiling, Some(20), 10, "rustc"), Some(true));
        // A compile the client runs itself, with or without a server to be found.
        let local = table(&[(10, 1, 10, true), (11, 10, 10, true), (20, 1, 20, true)]);
        assert_eq!(work_in(&local, Some(20), 10, "rustc"), Some(true));
        assert_eq!(work_in(&local, None, 10, "rustc"), Some(true));
        // A process of the group that is not the compiler is no compile (a helper, a sleep).
        let helper = table(&[(10, 1, 10, true), (33, 10, 10, true), (20, 1, 20, true)]);
        assert_eq!(work_in(&helper, Some(20), 10, "rustc"), Some(false));
        // A zombie of the group is no work.
        let zombie = table(&[(10, 1, 10, true), (11, 10, 10, false), (20, 1, 20, true)]);
        assert_eq!(work_in(&zombie, Some(20), 10, "rustc"), Some(false));
        // A server the client started into its group is not work itself.
        let started = table(&[(10, 1, 10, true), (20, 10, 10, true)]);
        assert_eq!(work_in(&started, Some(20), 10, "rustc"), Some(false));
        let started_compiling = table(&[(10, 1, 10, true), (20, 10, 10, true), (21, 20, 10, true)]);
        assert_eq!(
            work_in(&started_compiling, Some(20), 10, "rustc"),
            Some(true)
        );
    }

    #[test]
    fn descendants_are_found_parents_first_and_only_live_ones() {
        let t = table(&[
            (20, 1, 20, true),
            (21, 20, 20, true),
            (22, 21, 20, true),
            (23, 20, 20, false),
            (30, 1, 30, true),
        ]);
        assert_eq!(t.descendants(20), vec![21, 22]);
        assert!(t.descendants(30).is_empty());
        assert!(t.has(20) && !t.has(23) && !t.has(99));
        assert!(t.has_live_child(21) && !t.has_live_child(22));
    }

    #[test]
    fn stat_lines_are_read_past_any_command_name() {
        let e = parse_stat(7, "7 (a) b) (c) S 3 5 5 0 -1").unwrap();
        assert_eq!((e.pid, e.ppid, e.pgrp, e.live), (7, 3, 5, true));
        assert!(!parse_stat(7, "7 (rustc) Z 3 5 5").unwrap().live);
        assert!(parse_stat(7, "7 (rustc) R 3").is_none());
        assert!(parse_stat(7, "garbage").is_none());
        assert_eq!(parse_stat(7, "7 (a) b) S 3 5 5").unwrap().comm, "a) b");
        assert_eq!(comm_of("/x/y/rustc".as_ref()), "rustc");
        assert_eq!(
            comm_of("x86_64-linux-gnu-gcc-13".as_ref()),
            "x86_64-linux-gn"
        );
    }
}
