// Running a short command inside namespaces and collecting what it says: iptables-restore
// inside a node, a readiness probe's command inside a container. The child is cloned by
// CMinik straight into the namespaces it joins (no shell, no `ip netns exec`).
//
// In the supervisor a reaper thread waits for every child (the sandboxes are its children
// too), so a command's exit has to be handed over rather than waited for: `Children`
// keeps the pids somebody is waiting on, and the reaper gives their statuses back here.
import CMinik
import Foundation
import MinikSpec

public enum Children {
    nonisolated(unsafe) private static var waiting: [pid_t: Int32?] = [:]
    private static let cond = NSCondition()
    nonisolated(unsafe) private static var reaperRunning = false

    /// The supervisor's reaper calls this first; true when the pid was a command's.
    public static func deliver(pid: pid_t, status: Int32) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        guard waiting.keys.contains(pid) else { return false }
        waiting[pid] = status
        cond.broadcast()
        return true
    }

    public static func reaperStarted() {
        cond.lock()
        reaperRunning = true
        cond.unlock()
    }

    /// Spawns with `start` while the reaper cannot look (so it never misses the pid).
    static func spawn(_ start: () -> pid_t) -> pid_t {
        cond.lock()
        defer { cond.unlock() }
        let pid = start()
        if pid > 0 && reaperRunning { waiting[pid] = .some(nil) }
        return pid
    }

    /// Waits for a spawned child's status; after `deadline` the child is killed first.
    static func wait(_ pid: pid_t, deadline: Date?) -> (status: Int32, timedOut: Bool) {
        cond.lock()
        let managed = reaperRunning
        cond.unlock()
        var timedOut = false
        if !managed {
            var status: Int32 = 0
            while true {
                let r = waitpid(pid, &status, deadline == nil || timedOut ? 0 : WNOHANG)
                if r == pid { return (status, timedOut) }
                if r < 0 && errno != EINTR { return (-1, timedOut) }
                if r == 0 {
                    if let deadline, Date() >= deadline {
                        timedOut = true
                        kill(pid, SIGKILL)
                    } else {
                        usleep(1000)
                    }
                }
            }
        }
        cond.lock()
        defer { cond.unlock() }
        while true {
            if case .some(.some(let status)) = waiting[pid] {
                waiting.removeValue(forKey: pid)
                return (status, timedOut)
            }
            if let deadline, !timedOut {
                if !cond.wait(until: deadline) && Date() >= deadline {
                    timedOut = true
                    kill(pid, SIGKILL)
                }
            } else {
                cond.wait()
            }
        }
    }
}

public struct CommandResult: Sendable {
    /// Exit code, or 128 + signal.
    public var exitCode: Int32
    public var output: String
    public var timedOut: Bool
    public var succeeded: Bool { exitCode == 0 && !timedOut }
}

/// A running container as a place to run a command in: its namespaces (net, UTS, IPC,
/// mount, and the PID one the command is born in), its cgroups (so the command counts
/// against the container's memory and pids limits and gets its devices rules), its
/// environment and PATH, and the confinement its own processes have. `minik exec` and
/// exec probes both enter this way.
public final class ContainerEntry {
    public let pid: pid_t
    public let namespaceFDs: [Int32]
    public let pidNamespace: Int32
    public let cgroupFDs: [Int32]
    public let env: [String]
    public let searchPath: String
    public let confinement: Confinement?

    public init(pid: pid_t, container: ContainerSpec?) throws(RuntimeError) {
        // Checked before anything is opened: a throw after every property is set would
        // run deinit and close the descriptors a second time.
        let confinement = Confinement(container)
        if confinement?.isComplete == false {
            throw .state("the seccomp filter could not be built; refusing to run a command unconfined")
        }
        self.confinement = confinement
        var fds: [Int32] = []
        for ns in ["net", "uts", "ipc", "mnt", "pid"] {
            let fd = open("/proc/\(pid)/ns/\(ns)", O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                let e = errno
                fds.forEach { close($0) }
                throw .system("open /proc/\(pid)/ns/\(ns)", errno: e)
            }
            fds.append(fd)
        }
        self.pid = pid
        namespaceFDs = Array(fds[0..<4])
        pidNamespace = fds[4]
        cgroupFDs = Cgroups.joinFDs(ofProcess: pid)
        env = (try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8))?.split(separator: "\0").map(String.init) ?? []
        searchPath = env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    }

    deinit { (namespaceFDs + [pidNamespace] + cgroupFDs).forEach { close($0) } }

    /// Spawns argv inside the container in a session of its own (never the caller's), with
    /// the given stdio; `tty`: stdin is a terminal of the container's that becomes its
    /// controlling one. Returns the pid or -errno.
    public func spawn(_ argv: [String], env: [String]? = nil, stdin: Int32 = -1, stdout: Int32 = -1, stderr: Int32 = -1,
                      tty: Bool = false) -> pid_t {
        Command.spawn(argv, joining: namespaceFDs, pidNamespace: pidNamespace, searchPath: searchPath, env: env ?? self.env,
                      stdin: stdin, stdout: stdout, stderr: stderr, confine: confinement, cgroups: cgroupFDs,
                      newSession: true, tty: tty)
    }
}

public enum Command {
    /// Spawns `path` (default argv[0]: a path, or a name looked up in searchPath inside the
    /// joined mount namespace) with argv after joining the namespaces `fds` (at most 4), born in pidNamespace when
    /// one is given, with the given stdio (-1: /dev/null) and confinement. Returns the pid
    /// or -errno. The one spawn path of commands in namespaces (CLI exec and the supervisor).
    public static func spawn(_ argv: [String], path: String? = nil, joining fds: [Int32], pidNamespace: Int32 = -1, searchPath: String? = nil,
                             env: [String], stdin: Int32 = -1, stdout: Int32 = -1, stderr: Int32 = -1,
                             confine: Confinement? = nil, cgroups: [Int32] = [], newSession: Bool = false, tty: Bool = false) -> pid_t {
        precondition(!argv.isEmpty && fds.count <= 4 && cgroups.count <= 3)
        var attr = Sandbox.spawnAttributes()
        attr.cgroup_fds = Cgroups.triple(cgroups)
        attr.new_session = newSession ? 1 : 0
        attr.tty = tty ? 1 : 0
        attr.join_fds = (fds.count > 0 ? fds[0] : -1, fds.count > 1 ? fds[1] : -1, fds.count > 2 ? fds[2] : -1, fds.count > 3 ? fds[3] : -1)
        attr.pid_ns_fd = pidNamespace
        attr.stdin_fd = stdin
        attr.stdout_fd = stdout
        attr.stderr_fd = stderr
        if let confine {
            attr.confine = 1
            attr.capabilities = confine.capabilities
            attr.seccomp_filter = confine.filter
        }
        let path = path ?? argv[0]
        guard let searchPath else { return Sandbox.spawn(path: path, argv: argv, env: env, attr: &attr) }
        return searchPath.withCString { sp in
            attr.search_path = sp
            return Sandbox.spawn(path: path, argv: argv, env: env, attr: &attr)
        }
    }

    /// Runs argv like `spawn` does; `input` is its stdin; stdout and stderr are collected
    /// together. After `timeout` seconds the command is killed.
    /// `outputLimit`: bytes of output kept (the rest is read and dropped).
    public static func run(_ argv: [String], joining fds: [Int32] = [], env: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                           input: String? = nil, timeout: Double? = nil, outputLimit: Int = 65536) throws(RuntimeError) -> CommandResult {
        try run(argv, input: input, timeout: timeout, outputLimit: outputLimit) { stdin, out in
            spawn(argv, joining: fds, env: env, stdin: stdin, stdout: out, stderr: out)
        }
    }

    /// Runs argv inside a container (an exec probe), with its confinement and cgroups.
    public static func run(_ argv: [String], in entry: ContainerEntry, timeout: Double?) throws(RuntimeError) -> CommandResult {
        try run(argv, input: nil, timeout: timeout) { stdin, out in entry.spawn(argv, stdin: stdin, stdout: out, stderr: out) }
    }

    static func run(_ argv: [String], input: String?, timeout: Double?, outputLimit: Int = 65536,
                    start: (_ stdin: Int32, _ output: Int32) -> pid_t) throws(RuntimeError) -> CommandResult {
        var stdinFD: Int32 = -1
        if let input {
            stdinFD = minik_memfd("minik-stdin")
            if stdinFD < 0 { throw .system("memfd_create", errno: -stdinFD) }
            let bytes = Array(input.utf8)
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
                if n < 0 { let e = errno; close(stdinFD); throw .system("write command input", errno: e) }
                off += n
            }
            lseek(stdinFD, 0, SEEK_SET)
        }
        defer { if stdinFD >= 0 { close(stdinFD) } }
        var pipeFDs: [Int32] = [-1, -1]
        // (minik_spawn closes every other fd in the child, so the window before
        // FD_CLOEXEC is set leaks nothing into concurrent spawns.)
        if pipe(&pipeFDs) < 0 { throw .system("pipe", errno: errno) }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let pid = Children.spawn { start(stdinFD, pipeFDs[1]) }
        close(pipeFDs[1])
        if pid < 0 {
            close(pipeFDs[0])
            if pid == -ENOENT { throw .state("exec: \"\(argv[0])\": executable file not found") }
            throw .system("exec \(argv[0])", errno: -pid)
        }
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        let output = readAll(pipeFDs[0], until: deadline, outputLimit: outputLimit)
        close(pipeFDs[0])
        let (status, timedOut) = Children.wait(pid, deadline: deadline)
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return CommandResult(exitCode: code, output: output, timedOut: timedOut)
    }

    /// Reads a pipe to EOF (or until the deadline), keeping at most `outputLimit` bytes.
    static func readAll(_ fd: Int32, until deadline: Date?, outputLimit: Int = 65536) -> String {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            if let deadline {
                let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, ms) == 0 { break }
            }
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if out.count < outputLimit { out += buf[0..<min(n, outputLimit - out.count)] }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
