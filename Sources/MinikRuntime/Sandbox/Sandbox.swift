// Pod sandboxes: one pause process per pod that owns the pod's network, UTS and IPC
// namespaces (hostname = pod name), as kubelet's pause container does. The process is
// cloned straight into its new namespaces by CMinik (no Swift runs in the child) and
// started in its own session, so it outlives a supervisor that is killed: `down` finds
// and ends it through the namespace it holds.
import CMinik
import Foundation
import MinikSpec

public enum Sandbox {
    /// The pause binary: the one in the pause image (.build/images/pause), or $MINIK_PAUSE.
    public static func pauseBinary(images: ImageStore = .located()) throws(RuntimeError) -> String {
        if let p = ProcessInfo.processInfo.environment["MINIK_PAUSE"], access(p, X_OK) == 0 { return p }
        guard let image = images.image("pause"), access("\(image.rootfs)/pause", X_OK) == 0 else {
            throw .state("the pause image is missing from \(images.directory); build the images with `make`")
        }
        return "\(image.rootfs)/pause"
    }

    /// Spawn attributes with nothing to join and stdio on /dev/null.
    public static func spawnAttributes() -> minik_spawn_attr {
        var attr = minik_spawn_attr()
        attr.join_fds = (-1, -1, -1, -1)
        attr.cgroup_fds = (-1, -1, -1)
        attr.stdin_fd = -1
        attr.stdout_fd = -1
        attr.stderr_fd = -1
        attr.pid_ns_fd = -1
        attr.search_path = nil
        return attr
    }

    /// Starts a pause process in new net, UTS and IPC namespaces with the given hostname,
    /// and a new PID namespace (pause is its PID 1, reaping) when the pod shares one.
    public static func start(pause: String, hostname: String, sharedPID: Bool = false, cgroup: Int32 = -1) throws(RuntimeError) -> pid_t {
        var attr = spawnAttributes()
        attr.cgroup_fds.0 = cgroup
        attr.clone_flags = MINIK_CLONE_NEWNET | MINIK_CLONE_NEWUTS | MINIK_CLONE_NEWIPC | (sharedPID ? MINIK_CLONE_NEWPID : 0)
        attr.new_session = 1
        let pid = hostname.withCString { h -> pid_t in
            attr.hostname = h
            return spawn(path: pause, argv: ["/pause"], env: [], attr: &attr)
        }
        if pid < 0 { throw .system("start pause for \(hostname)", errno: -pid) }
        return pid
    }

    /// Writes a pod's sysctls (spec.securityContext.sysctls) into the namespaces of its
    /// sandbox, before any container starts: a container's own /proc/sys is read-only.
    public static func applySysctls(_ sysctls: [Sysctl], pid: pid_t) throws(RuntimeError) {
        for s in sysctls {
            let fd = open("/proc/\(pid)/ns/\(s.namespace)", O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw .system("open the sandbox's \(s.namespace) namespace", errno: errno) }
            let rc = minik_sysctl_in_netns(fd, s.procPath, s.value)
            close(fd)
            if rc < 0 { throw .state("sysctl \(s.name)=\(s.value): \(String(cString: strerror(-rc)))") }
        }
    }

    /// minik_spawn with Swift strings; returns the pid or -errno.
    public static func spawn(path: String, argv: [String], env: [String], attr: inout minik_spawn_attr) -> pid_t {
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        return cArgv.withUnsafeBufferPointer { a in
            cEnv.withUnsafeBufferPointer { e in
                minik_spawn(&attr, path, a.baseAddress, e.baseAddress)
            }
        }
    }

    /// Start time of a process (clock ticks since boot), to tell it from a later process
    /// that reuses its pid. 0 when it is gone.
    public static func startTime(_ pid: pid_t) -> UInt64 { UInt64(minik_proc_starttime(pid)) }

    /// True when pid is alive and is the process that had startTime.
    public static func isAlive(_ pid: pid_t, startTime: UInt64) -> Bool {
        guard pid > 0 else { return false }
        let now = Self.startTime(pid)
        guard now != 0, now == startTime else { return false }
        // A zombie has a start time too; it is not running.
        return isRunning(pid)
    }

    /// The process exists and is not a zombie (field 3 of /proc/PID/stat).
    /// (One read(2) into a buffer: the state snapshot checks every pod with it.)
    public static func isRunning(_ pid: pid_t) -> Bool {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 512)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let paren = buf[..<n].lastIndex(of: UInt8(ascii: ")")), paren + 2 < n else { return false }
        let state = buf[paren + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }
}
