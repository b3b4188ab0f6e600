// Starting one container of a pod: its files (the pod's /etc/hosts, /etc/hostname,
// /etc/resolv.conf, shared by all its containers), a fresh writable layer per attempt
// (a restarted container starts from the image again, as in Kubernetes) on a tmpfs of
// resources.limits.ephemeral-storage (1 GiB by default) that lives in the container's
// mount namespace only, a log file per attempt (logs/<ns>_<pod>/<container>/<attempt>.log,
// rotated as kubelet does: ContainerLogs), and the
// process itself through CMinik's container spawn: pod namespaces joined, own mount and
// PID namespaces, overlayfs root, masked /proc paths, Docker's default devices cgroup,
// capabilities and seccomp profile (Confinement) unless privileged.
import CMinik
import Foundation
import MinikSpec

public enum ContainerRunner {
    /// The mount namespace containers are copied from: ours, minus /run/netns and its
    /// pins (a new mount namespace copies every mount: with hundreds of pods that copy
    /// was most of a container's start time). -1 when it could not be made.
    static let baseMountNamespace: Int32 = {
        var fd: Int32 = -1
        return minik_container_base_mntns(Naming.netnsDir, &fd) == 0 ? fd : -1
    }()

    public static func podDir(_ cluster: String, _ pod: PodSpec) -> String {
        "\(Naming.clusterDir(cluster))/pods/\(pod.namespace)_\(pod.name)"
    }

    public static func logDir(_ cluster: String, namespace: String, pod: String, container: String) -> String {
        "\(Naming.clusterDir(cluster))/logs/\(namespace)_\(pod)/\(container)"
    }

    public static func logFile(_ cluster: String, namespace: String, pod: String, container: String, attempt: Int) -> String {
        "\(logDir(cluster, namespace: namespace, pod: pod, container: container))/\(attempt).log"
    }

    /// The log file of a container's current run (or the previous one): in back-off the
    /// current attempt has not run yet, so the last one is shown; when a fast crash loop
    /// moved on (only two runs are kept), the latest run kept up to that one.
    public static func logPath(_ cluster: String, pod p: PodState, container c: ContainerStatus, previous: Bool) -> String {
        var attempt = c.state == .waiting ? max(c.restartCount - 1, 0) : c.restartCount
        if previous { attempt = c.state == .waiting ? max(c.restartCount - 2, 0) : max(c.restartCount - 1, 0) }
        let path = logFile(cluster, namespace: p.namespace, pod: p.name, container: c.name, attempt: attempt)
        if FileManager.default.fileExists(atPath: path) { return path }
        let dir = logDir(cluster, namespace: p.namespace, pod: p.name, container: c.name)
        let runs = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).compactMap { f -> Int? in
            f.hasSuffix(".log") ? Int(f.dropLast(4)) : nil
        }
        if let run = runs.filter({ $0 <= attempt }).max() ?? (previous ? nil : runs.max()) {
            return logFile(cluster, namespace: p.namespace, pod: p.name, container: c.name, attempt: run)
        }
        return path
    }

    /// Writes the pod's /etc files, as kubelet does: hosts (with the pod's FQDN when it has
    /// a hostname and subdomain), hostname, and resolv.conf for its dnsPolicy.
    public static func preparePod(cluster: ClusterSpec, pod: PodSpec, ip: IPv4Address) throws(RuntimeError) {
        let dir = podDir(cluster.name, pod)
        let host = pod.hostname ?? pod.name
        // kubelet: "<ip> <hostname>.<subdomain>.<ns>.svc.<domain> <hostname>" with a subdomain.
        let names = pod.subdomain.map { "\(host).\($0).\(pod.namespace).svc.\(cluster.dns.clusterDomain)\t\(host)" } ?? host
        let hosts = """
        # Kubernetes-managed hosts file (minik).
        127.0.0.1\tlocalhost
        ::1\tlocalhost ip6-localhost ip6-loopback
        \(ip)\t\(names)

        """
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try hosts.write(toFile: "\(dir)/hosts", atomically: true, encoding: .utf8)
            try "\(host)\n".write(toFile: "\(dir)/hostname", atomically: true, encoding: .utf8)
            try ResolvConf.render(pod: pod, cluster: cluster).write(toFile: "\(dir)/resolv.conf", atomically: true, encoding: .utf8)
        } catch {
            throw .state("pod \(pod.key): cannot write its files in \(dir): \(error)")
        }
    }

    public struct Started: Sendable {
        public var pid: Int32
        public var startTime: UInt64
        /// Its stdin, when it has one (stdin or tty).
        public var console: ContainerConsole?
    }

    /// Starts attempt `attempt` of container `c` in the pod whose sandbox is `pausePID`.
    /// On failure the reason is also written to the attempt's log, as kubelet reports it.
    /// The writable layer's size when the container sets no ephemeral-storage limit.
    public static let defaultWritableLayer: Int64 = 1 << 30

    /// The environment kubelet gives every container for the API service (even with
    /// enableServiceLinks false): KUBERNETES_SERVICE_HOST, KUBERNETES_PORT...
    public static func apiServiceEnv(_ ip: IPv4Address, port: Int = 443) -> [(String, String)] {
        [("KUBERNETES_SERVICE_HOST", ip.description), ("KUBERNETES_SERVICE_PORT", "\(port)"), ("KUBERNETES_SERVICE_PORT_HTTPS", "\(port)"),
         ("KUBERNETES_PORT", "tcp://\(ip):\(port)"), ("KUBERNETES_PORT_\(port)_TCP", "tcp://\(ip):\(port)"),
         ("KUBERNETES_PORT_\(port)_TCP_PROTO", "tcp"), ("KUBERNETES_PORT_\(port)_TCP_PORT", "\(port)"),
         ("KUBERNETES_PORT_\(port)_TCP_ADDR", ip.description)]
    }

    /// A namespace's service account files (token, ca.crt, namespace), mounted into its pods.
    public static func serviceAccountDir(_ cluster: String, namespace: String) -> String {
        "\(Naming.clusterDir(cluster))/serviceaccounts/\(namespace)"
    }

    public static func start(cluster: String, pod: PodSpec, container c: ContainerSpec, image: Image,
                             pausePID: Int32, attempt: Int, logs: ContainerLogs,
                             apiService: IPv4Address? = nil, pidNamespaceOf target: Int32? = nil) throws(RuntimeError) -> Started {
        let dir = "\(podDir(cluster, pod))/\(c.name)"
        // rw/ is only a mount point: the tmpfs on it exists in the container's namespace.
        let rw = "\(dir)/rw", merged = "\(dir)/merged"
        let logDir = Self.logDir(cluster, namespace: pod.namespace, pod: pod.name, container: c.name)
        let fm = FileManager.default
        do {
            for d in [rw, merged, logDir] { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }
        } catch {
            throw .state("container \(c.name): cannot prepare \(dir): \(error)")
        }
        let logPath = logFile(cluster, namespace: pod.namespace, pod: pod.name, container: c.name, attempt: attempt)
        let fifo = try ContainerLogs.fifo(inContainerDir: dir)
        let log = try logs.attach("\(pod.key)/\(c.name)", fifo: fifo, logPath: logPath, attempt: attempt)
        defer { close(log) }

        var nsFDs: [Int32] = []
        defer { nsFDs.forEach { close($0) } }
        for ns in ["net", "uts", "ipc"] + (pod.shareProcessNamespace || target != nil ? ["pid"] : []) {
            // An ephemeral container with a target joins the target's PID namespace.
            let owner = ns == "pid" ? target ?? pausePID : pausePID
            let fd = open("/proc/\(owner)/ns/\(ns)", O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw .system("open the \(owner == pausePID ? "sandbox" : "target container")'s \(ns) namespace (pid \(owner))", errno: errno) }
            nsFDs.append(fd)
        }
        let (cgroupFDs, cgroupNotes) = Cgroups.prepare(cluster: cluster, pod: pod, container: c)
        defer { cgroupFDs.forEach { close($0) } }
        for note in cgroupNotes { _ = "minik: \(note)\n".withCString { write(log, $0, strlen($0)) } }
        var env: [String] = image.config.env
        func setEnv(_ k: String, _ v: String) {
            env.removeAll { $0.hasPrefix("\(k)=") }
            env.append("\(k)=\(v)")
        }
        setEnv("HOSTNAME", pod.hostname ?? pod.name)
        if let apiService { for (k, v) in apiServiceEnv(apiService) { setEnv(k, v) } }
        for e in c.env { setEnv(e.name, e.value) }
        let searchPath = env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        let argv = image.config.argv(command: c.command, args: c.args)
        guard !argv.isEmpty else { throw .spec("container \(c.name): no command and image \(image.name) has none") }

        let podDir = Self.podDir(cluster, pod)
        let overlay = "lowerdir=\(image.rootfs),upperdir=\(rw)/upper,workdir=\(rw)/work"
        let rwOptions = "size=\(c.ephemeralStorageLimit ?? defaultWritableLayer),mode=0755"
        let workdir = c.workingDir ?? image.config.workingDir ?? "/"
        let confinement = Confinement(c)
        if confinement?.isComplete == false { throw .state("container \(c.name): the seccomp filter could not be built; refusing to start it unconfined") }
        // A directory of the cluster's state (the DNS pods' zone), mounted as a volume.
        let dirMount = c.clusterDirMounts.first
        let dirSource = dirMount.map { "\(Naming.clusterDir(cluster))/\($0.subpath)" } ?? ""
        let secrets = serviceAccountDir(cluster, namespace: pod.namespace)
        let hasSecrets = FileManager.default.fileExists(atPath: "\(secrets)/token")
        // tty: the terminal's master comes back over a socket pair; stdin: a pipe.
        var consoleSocket: [Int32] = [-1, -1], stdinPipe: [Int32] = [-1, -1]
        if c.tty {
            if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &consoleSocket) < 0 {
                throw .system("socketpair for container \(c.name)'s terminal", errno: errno)
            }
        } else if c.stdin {
            if pipe(&stdinPipe) < 0 { throw .system("pipe for container \(c.name)'s stdin", errno: errno) }
            stdinPipe.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
        }
        defer { (consoleSocket + stdinPipe).forEach { if $0 >= 0 { close($0) } } }
        var step: UnsafePointer<CChar>?
        let pid: pid_t = withCStrings([merged, overlay, "\(podDir)/hosts", "\(podDir)/hostname", "\(podDir)/resolv.conf", workdir, searchPath,
                                       dirSource, dirMount?.mountPath ?? "", rw, rwOptions, "\(rw)/upper", "\(rw)/work", secrets]) { s in
            var attr = minik_container_attr()
            attr.join_fds = (nsFDs[0], nsFDs[1], nsFDs[2], -1)
            attr.base_mnt_fd = Self.baseMountNamespace
            attr.share_pid_fd = nsFDs.count > 3 ? nsFDs[3] : -1
            attr.merged = s[0]
            attr.overlay_options = s[1]
            attr.rw_dir = s[9]
            attr.rw_options = s[10]
            attr.rw_upper = s[11]
            attr.rw_work = s[12]
            attr.hosts = s[2]
            attr.hostname = s[3]
            attr.resolv = s[4]
            attr.workdir = s[5]
            attr.search_path = s[6]
            attr.dir_source = dirMount == nil ? nil : s[7]
            attr.dir_target = dirMount == nil ? nil : s[8]
            attr.dir_readonly = dirMount?.readOnly == false ? 0 : 1
            attr.secrets_source = hasSecrets ? s[13] : nil
            attr.capabilities = confinement?.capabilities ?? UInt64.max
            attr.privileged = confinement == nil ? 1 : 0
            attr.seccomp_filter = confinement?.filter
            attr.stdin_fd = stdinPipe[0]
            attr.stdout_fd = log
            attr.stderr_fd = log
            attr.tty = 0
            attr.console_socket = consoleSocket[1]
            attr.cgroup_fds = Cgroups.triple(cgroupFDs)
            let cArgv = argv.map { strdup($0) } + [nil]
            let cEnv = env.map { strdup($0) } + [nil]
            defer { cArgv.forEach { free($0) }; cEnv.forEach { free($0) } }
            return cArgv.withUnsafeBufferPointer { a in
                cEnv.withUnsafeBufferPointer { e in minik_spawn_container(&attr, a.baseAddress, e.baseAddress, &step) }
            }
        }
        if pid < 0 {
            let what = step.map { String(cString: $0) } ?? "start"
            let message: String
            if what == "exec" && -pid == ENOENT {
                message = "exec: \"\(argv[0])\": not found"
            } else if what == "exec" {
                message = "exec: \"\(argv[0])\": \(String(cString: strerror(-pid)))"
            } else {
                message = "\(what): \(String(cString: strerror(-pid)))"
            }
            // Straight into the attempt's file, not through the FIFO: the next attempt may
            // start (and prune) before the copier would get to it.
            let file = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            if file >= 0 {
                _ = "minik: \(message)\n".withCString { write(file, $0, strlen($0)) }
                close(file)
            }
            throw .state(message)
        }
        var console: ContainerConsole?
        if c.tty {
            let master = minik_recv_fd(consoleSocket[0])
            if master >= 0 {
                console = ContainerConsole(master: master, log: dup(log), stdin: c.stdin, stdinOnce: c.stdinOnce)
            }
        } else if c.stdin {
            console = ContainerConsole(pipe: stdinPipe[1], stdinOnce: c.stdinOnce)
            stdinPipe[1] = -1
        }
        return Started(pid: pid, startTime: Sandbox.startTime(pid), console: console)
    }

    static func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>]) -> R) -> R {
        let dup = strings.map { strdup($0)! }
        defer { dup.forEach { free($0) } }
        return body(dup.map { UnsafePointer($0) })
    }
}
