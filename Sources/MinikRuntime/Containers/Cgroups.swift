// Resource limits through the host's cgroups (v1 here: memory, pids and devices
// controllers at /sys/fs/cgroup/<controller>). Each container gets /sys/fs/cgroup/
// <controller>/minik/<cluster>/<ns>_<pod>_<container>, with memory.limit_in_bytes from
// resources.limits.memory, pids.max (every container: a fork bomb in a lab must not take
// the host down) and, unless privileged, Docker's default device list: null, zero, full,
// random, urandom, tty, ptmx and the pts terminals, nothing else, not even mknod (CAP_MKNOD
// stays, as in Docker, but a node made of any other device can neither be made nor
// opened). The container's child joins them by writing "0" (itself) to cgroup.procs
// before execve, so no process runs unlimited; `minik exec` and exec probes join the same
// cgroups. Where a controller is missing, that limit is skipped and the pod says so in its
// events. down removes the whole minik/<cluster> tree.
import Foundation
import MinikSpec

public enum Cgroups {
    public static let root = "/sys/fs/cgroup"
    public static let pidsMax = 1024

    public static func dir(_ controller: String, cluster: String) -> String { "\(root)/\(controller)/minik/\(cluster)" }

    /// Every controller minik puts a container in.
    static let controllers = ["pids", "memory", "devices"]

    /// Docker's default device rules (moby oci/devices_linux.go, without its mknod
    /// wildcards): the character devices a container's /dev holds.
    public static let allowedDevices = [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", // null zero full random urandom
        "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm",                          // tty ptmx pts/*
    ]

    static func available(_ controller: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(root)/\(controller)/cgroup.procs")
    }

    /// Creates the container's cgroups, sets the limits and returns open cgroup.procs fds
    /// for the child to join, and notes on what could not be applied.
    public static func prepare(cluster: String, pod: PodSpec, container c: ContainerSpec) -> (fds: [Int32], notes: [String]) {
        var fds: [Int32] = []
        var notes: [String] = []
        let leaf = "\(pod.namespace)_\(pod.name)_\(c.name)"
        var limits: [(String, String, [String])] = [("pids", "pids.max", ["\(pidsMax)"])]
        if let bytes = c.memoryLimit { limits.append(("memory", "memory.limit_in_bytes", ["\(bytes)"])) }
        if !c.privileged {
            limits.append(("devices", "devices.deny", ["a"]))
            limits.append(("devices", "devices.allow", allowedDevices))
        }
        var joined = Set<String>()
        for (controller, file, values) in limits {
            guard available(controller) else {
                notes.append("the host has no \(controller) cgroup controller: \(file) not applied")
                continue
            }
            let path = "\(dir(controller, cluster: cluster))/\(leaf)"
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                notes.append("\(controller) limit not applied: \(error.localizedDescription)")
                continue
            }
            // One rule per write: the kernel parses a write as one value.
            if let failed = values.first(where: { !write($0, to: "\(path)/\(file)") }) {
                notes.append("\(controller) limit not applied: \(file) refused \"\(failed)\": \(String(cString: strerror(errno)))")
                continue
            }
            guard joined.insert(controller).inserted else { continue }
            let fd = open("\(path)/cgroup.procs", O_WRONLY | O_CLOEXEC)
            if fd >= 0 { fds.append(fd) } else { notes.append("cannot join the \(controller) cgroup") }
        }
        return (fds, notes)
    }

    /// The cluster's sandbox cgroup (pids controller, "sandboxes"), its cgroup.procs
    /// opened for a pause process to join; -1 without the controller.
    public static func sandboxFD(cluster: String) -> Int32 {
        guard available("pids") else { return -1 }
        let path = "\(dir("pids", cluster: cluster))/sandboxes"
        guard (try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)) != nil else { return -1 }
        return open("\(path)/cgroup.procs", O_WRONLY | O_CLOEXEC)
    }

    static func write(_ value: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return value.withCString { Foundation.write(fd, $0, strlen($0)) } == value.utf8.count
    }

    /// Three cgroup.procs fds for CMinik's spawn attributes (-1 unused).
    public static func triple(_ fds: [Int32]) -> (Int32, Int32, Int32) {
        (fds.count > 0 ? fds[0] : -1, fds.count > 1 ? fds[1] : -1, fds.count > 2 ? fds[2] : -1)
    }

    /// cgroup.procs fds of a running container's own cgroups (those under minik/, from
    /// /proc/PID/cgroup), for a command that joins them.
    public static func joinFDs(ofProcess pid: Int32) -> [Int32] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return [] }
        var fds: [Int32] = []
        for line in text.split(separator: "\n") {
            // "12:pids:/minik/<cluster>/<leaf>"
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, controllers.contains(String(parts[1])), parts[2].hasPrefix("/minik/"),
                  !parts[2].contains("..") else { continue }
            let fd = open("\(root)/\(parts[1])\(parts[2])/cgroup.procs", O_WRONLY | O_CLOEXEC)
            if fd >= 0 && fds.count < 3 { fds.append(fd) } else if fd >= 0 { close(fd) }
        }
        return fds
    }

    /// How many times the kernel's OOM killer acted in the container's memory cgroup.
    public static func oomKills(cluster: String, pod: PodSpec, container: String) -> Int {
        let path = "\(dir("memory", cluster: cluster))/\(pod.namespace)_\(pod.name)_\(container)/memory.oom_control"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count)) ?? 0
        }
        return 0
    }

    /// Every process in a cluster's cgroups: each container joins its own before execve,
    /// so this finds one that was started while the cluster was being torn down, after
    /// its namespace stopped being findable.
    public static func processes(cluster: String) -> [Int32] {
        var out: [Int32] = []
        for controller in controllers {
            let base = dir(controller, cluster: cluster)
            for leaf in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
                guard let text = try? String(contentsOfFile: "\(base)/\(leaf)/cgroup.procs", encoding: .utf8) else { continue }
                out += text.split(separator: "\n").compactMap { Int32($0) }
            }
        }
        return out
    }

    /// One pass at removing every cgroup of a cluster, without waiting; true when none is
    /// left (a cgroup with processes, even dying ones, refuses with EBUSY).
    public static func removeOnce(cluster: String) -> Bool {
        var left = false
        for controller in controllers {
            let base = dir(controller, cluster: cluster)
            for leaf in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: "\(base)/\(leaf)", isDirectory: &isDir), isDir.boolValue,
                   rmdir("\(base)/\(leaf)") != 0 && errno != ENOENT { left = true }
            }
            if rmdir(base) != 0 && errno != ENOENT { left = true }
            rmdir("\(root)/\(controller)/minik") // only when no other cluster uses it
        }
        return !left
    }

    /// Removes one pod's cgroups.
    public static func remove(cluster: String, pod: PodState) {
        for controller in controllers {
            for c in pod.containers { rmdirRetrying("\(dir(controller, cluster: cluster))/\(pod.namespace)_\(pod.name)_\(c.name)") }
        }
    }

    /// A cgroup with dying processes refuses rmdir (EBUSY) for a moment.
    static func rmdirRetrying(_ path: String) {
        for _ in 0..<100 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            if errno != EBUSY { return }
            usleep(10_000)
        }
    }
}
