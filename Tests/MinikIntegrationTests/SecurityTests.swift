// Root tests of a container's confinement, each an attack that once worked from inside a
// pod and must fail now (Docker's defaults: a terminal of its own, read-only and masked
// kernel files, a devices cgroup, a seccomp filter closed to new user namespaces), with
// what privileged or CAP_SYS_ADMIN lift. The attacks run a small static probe
// (Tests/Fixtures/escape-probe.c) copied into the containers through `minik exec -i`.
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import Testing

extension RootTests {
@Suite("Container confinement (root)", .serialized)
struct SecurityTests {
    static let cluster = "it-sec"
    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: it-sec
    nodes: [{role: control-plane}]
    ---
    apiVersion: minik.dev/v1alpha1
    kind: MinikConfig
    dns: {enabled: false}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: plain}
    spec:
      containers:
      - name: c
        image: busybox
        command: [sleep, infinity]
        resources: {limits: {memory: 32Mi}}
        readinessProbe:
          exec: {command: [sh, -c, "cat /proc/self/cgroup > /tmp/probe-cgroup"]}
          periodSeconds: 1
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: admin}
    spec:
      containers:
      - {name: c, image: busybox, command: [sleep, infinity], securityContext: {capabilities: {add: [SYS_ADMIN]}}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: priv}
    spec:
      containers:
      - {name: c, image: busybox, command: [sleep, infinity], securityContext: {privileged: true}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: chrooted}
    spec:
      containers:
      - name: c
        image: busybox
        # Its main process chroots into a tree whose dev/pts/ptmx points at a host path:
        # exec -t must not follow it (it used to, through /proc/PID/root).
        command: [sh, -c, "mkdir -p /x/dev/pts /x/bin && cp /bin/busybox /x/bin/ && ln -s /tmp/it-sec-canary /x/dev/pts/ptmx && exec chroot /x /bin/busybox sleep 100000"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: tuned}
    spec:
      securityContext:
        sysctls:
        - {name: net.ipv4.ip_local_port_range, value: "20000 20999"}
        - {name: net/ipv4/ip_unprivileged_port_start, value: "80"}
      containers:
      - {name: c, image: busybox, command: [sleep, infinity]}
    """

    func run(_ pod: String, _ command: String) -> Result {
        minik(["exec", "--name", Self.cluster, pod, "--", "sh", "-c", command])
    }

    /// Builds the probe and copies it to /tmp/probe in each pod.
    func installProbe(into pods: [String], dir: String) throws {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/escape-probe.c").path
        let binary = "\(dir)/escape-probe"
        let cc = shell(["cc", "-static", "-O2", "-o", binary, source])
        try #require(cc.code == 0, "cannot build the probe: \(cc.err)")
        for pod in pods {
            let copy = shell(["sh", "-c", "'\(minikBinary)' exec --name \(Self.cluster) -i \(pod) -- sh -c 'cat > /tmp/probe && chmod +x /tmp/probe' < '\(binary)'"])
            try #require(copy.code == 0, "cannot copy the probe into \(pod): \(copy.err)")
        }
    }

    @Test("a container cannot reach the caller's terminal, kernel settings, host devices or new user namespaces, nor leave its cgroups through exec")
    func escapesFail() throws {
        try claim(Self.cluster)
        let spec = try SpecFile(Self.yaml)
        defer { cleanUp(Self.cluster) }
        let up = minik(["up", "-q", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        let dir = URL(fileURLWithPath: spec.path).deletingLastPathComponent().path
        try installProbe(into: ["plain", "admin"], dir: dir)

        // 1. Terminal injection: exec's caller sits in a shell on a terminal; the command
        // pushes a line into "its" terminal, which the caller's shell would then read.
        let attack = "\(dir)/attack.sh"
        try """
        #!/bin/bash
        "$1" exec --name \(Self.cluster) $2 plain -- /tmp/probe tiocsti $'touch /tmp/minik-pwned\\n'
        read -t 1 line
        echo "got:$line"
        """.write(toFile: attack, atomically: true, encoding: .utf8)
        chmod(attack, 0o755)
        let plainExec = shell(["script", "-qec", "\(attack) \(minikBinary) -i", "/dev/null"])
        #expect(plainExec.out.contains("blocked") && !plainExec.out.contains("injected"), "\(plainExec.out)")
        #expect(!plainExec.out.contains("got:touch"), "the caller's shell read the injected line: \(plainExec.out)")
        // With -t the command has a terminal of its own, in the container: what it pushes
        // stays there.
        let ttyExec = shell(["script", "-qec", "\(attack) \(minikBinary) -it", "/dev/null"])
        #expect(!ttyExec.out.contains("got:touch"), "the caller's shell read the injected line: \(ttyExec.out)")
        // Without -t: pipes, and no controlling terminal to open as /dev/tty.
        let fds = shell(["script", "-qec", "\(minikBinary) exec --name \(Self.cluster) plain -- sh -c 'readlink /proc/self/fd/1; cat /dev/tty || echo NO-TTY'", "/dev/null"])
        #expect(fds.out.contains("pipe:") && fds.out.contains("NO-TTY"), "\(fds.out)")
        let pty = shell(["script", "-qec", "\(minikBinary) exec --name \(Self.cluster) -it plain -- tty", "/dev/null"])
        #expect(pty.out.contains("/dev/pts/0"), "the container's own pty: \(pty.out)")
        // A container whose process chrooted onto a symlink to a host path: the terminal
        // still comes from its own devpts, and the host path is never opened.
        let canary = "/tmp/it-sec-canary"
        FileManager.default.createFile(atPath: canary, contents: Data("canary".utf8))
        defer { try? FileManager.default.removeItem(atPath: canary) }
        chmod(canary, 0o600)
        let before = try FileManager.default.attributesOfItem(atPath: canary)[.modificationDate] as? Date
        #expect(waitFor { minik(["exec", "--name", Self.cluster, "chrooted", "--", "busybox", "true"]).code == 0 })
        let chrooted = shell(["script", "-qec", "\(minikBinary) exec --name \(Self.cluster) -it chrooted -- /bin/busybox tty", "/dev/null"])
        #expect(chrooted.out.contains("/dev/pts/0"), "\(chrooted.out) \(chrooted.err)")
        #expect(try String(contentsOfFile: canary, encoding: .utf8) == "canary")
        #expect(try FileManager.default.attributesOfItem(atPath: canary)[.modificationDate] as? Date == before)

        // 2. Kernel settings are read-only, kernel internals masked; privileged lifts it.
        let hostPattern = try String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8)
        // (It writes the host's own value back: were the attack to work, nothing changes.)
        let core = run("plain", "read -r p < /proc/sys/kernel/core_pattern; printf '%s' \"$p\" > /proc/sys/kernel/core_pattern")
        #expect(core.code != 0 && core.err.contains("Read-only file system"), "\(core.err)")
        #expect(try String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8) == hostPattern)
        #expect(run("plain", "echo h > /proc/sysrq-trigger").code != 0)
        #expect(run("admin", "read -r p < /proc/sys/kernel/core_pattern; printf '%s' \"$p\" > /proc/sys/kernel/core_pattern").code != 0,
                "CAP_SYS_ADMIN does not lift the masks")
        #expect(run("plain", "cat /proc/timer_list /proc/keys /proc/sched_debug | wc -c").out.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(run("plain", "ls /sys/firmware | wc -l").out.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(run("plain", "grep -c ' /proc/sys ' /proc/self/mounts").out.hasPrefix("1"))
        #expect(run("priv", "grep -c ' /proc/sys ' /proc/self/mounts").out.hasPrefix("0"))
        // ...and a pod's safe sysctls are set in its own namespace by the runtime.
        #expect(run("tuned", "cat /proc/sys/net/ipv4/ip_local_port_range").out.split(whereSeparator: \.isWhitespace) == ["20000", "20999"])
        #expect(run("tuned", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start").out.hasPrefix("80"))
        #expect(run("plain", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start").out.hasPrefix("1024"))

        // 3. Host devices: no mknod of the hwrng or loop-control; /dev's own still work.
        let hwrng = run("plain", "mknod /dev/x c 10 183")
        #expect(hwrng.code != 0 && hwrng.err.contains("Operation not permitted"), "\(hwrng.err)")
        #expect(run("plain", "mknod /tmp/lc c 10 237").code != 0)
        #expect(run("plain", "mknod /tmp/disk b 7 0").code != 0)
        #expect(run("plain", "head -c 4 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok").out.contains("null-ok"))
        #expect(run("priv", "mknod /tmp/n c 1 3 && echo x > /tmp/n && echo made").out.contains("made"))

        // 4. User namespaces: clone with namespace flags EPERM, clone3 ENOSYS; CAP_SYS_ADMIN lifts it.
        #expect(run("plain", "/tmp/probe clone-newuser").out == "EPERM\n")
        #expect(run("plain", "/tmp/probe clone3").out == "ENOSYS\n")
        #expect(run("plain", "unshare -n true").code != 0)
        #expect(run("admin", "/tmp/probe clone-newuser").out == "ok\n")
        #expect(run("admin", "/tmp/probe clone3").out == "ok\n")
        #expect(run("admin", "unshare -n true").code == 0)

        // 5. exec and exec probes run inside the container's cgroups and its limits.
        let leaf = "/minik/\(Self.cluster)/default_plain_c"
        let cg = run("plain", "cat /proc/self/cgroup").out
        for controller in ["pids", "memory", "devices"] {
            #expect(cg.contains(":\(controller):\(leaf)\n"), "\(controller): \(cg)")
        }
        #expect(waitFor { run("plain", "cat /tmp/probe-cgroup").out.contains(":pids:\(leaf)\n") }, "the exec probe ran outside the container's cgroups")
        let hog = run("plain", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived")
        #expect(!hog.out.contains("survived"), "exec escaped the 32Mi limit")

        let pids = (try? ClusterState.load(cluster: Self.cluster))?.pods.flatMap { [$0.pid] + $0.containers.map(\.pid) } ?? []
        #expect(minik(["down", "--name", Self.cluster]).code == 0)
        expectNothingLeft(Self.cluster, pids: pids)
        #expect(!FileManager.default.fileExists(atPath: Cgroups.dir("devices", cluster: Self.cluster)))
    }
    @Test("container logs rotate at 10 MiB, five files, the previous run only; writable layers are bounded tmpfs")
    func boundedRAM() throws {
        let name = "it-ram"
        try claim(name)
        let spec = try SpecFile("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: \(name)
        nodes: [{role: control-plane}]
        ---
        apiVersion: minik.dev/v1alpha1
        kind: MinikConfig
        dns: {enabled: false}
        restartBackoffSeconds: 0
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: chatty}
        spec:
          containers:
          - {name: c, image: busybox, command: [sh, -c, "yes 0123456789012345678901234567890123456789012345678901234567890123456789"]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: crashy}
        spec:
          containers:
          - {name: c, image: busybox, command: [sh, -c, "echo run-$(cat /proc/uptime); sleep 0.2; exit 1"]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: disk}
        spec:
          containers:
          - {name: small, image: busybox, command: [sleep, infinity], resources: {limits: {ephemeral-storage: 16Mi}}}
          - {name: default, image: busybox, command: [sleep, infinity]}
        """)
        defer { cleanUp(name) }
        try #require(minik(["up", "-q", spec.path]).code == 0)
        let fm = FileManager.default
        func files(_ pod: String) -> [String: Int] {
            let dir = ContainerRunner.logDir(name, namespace: "default", pod: pod, container: "c")
            var out: [String: Int] = [:]
            for f in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                out[f] = ((try? fm.attributesOfItem(atPath: "\(dir)/\(f)"))?[.size] as? Int) ?? 0
            }
            return out
        }
        // A container writing as fast as it can: rotated at 10 MiB, five files at most.
        #expect(waitFor { files("chatty").count == ContainerLogs.maxFiles }, "\(files("chatty"))")
        usleep(500_000)
        let chatty = files("chatty")
        #expect(chatty.count <= ContainerLogs.maxFiles, "\(chatty)")
        #expect(chatty.values.allSatisfy { $0 <= ContainerLogs.maxSize }, "\(chatty)")
        #expect(chatty.keys.filter { $0.hasPrefix("0.log.") }.count == ContainerLogs.maxFiles - 1, "\(chatty)")
        // Files start with a whole line (it may be empty for a moment after a rotation).
        #expect(waitFor { minik(["logs", "--name", name, "chatty"]).out.hasPrefix("0123456789") })
        // A crash loop keeps the current run and the previous one, not every run.
        let restarts = { liveState(name)?.pod("crashy", namespace: "default")?.containers.first?.restartCount ?? 0 }
        #expect(waitFor { restarts() >= 8 }, "\(restarts()) restarts")
        let crashy = files("crashy")
        #expect(crashy.count <= 3, "\(crashy)") // 2, or 3 for the moment a new run starts
        // (A run lasts 0.2 s: the state read and the file read may straddle a restart.)
        #expect(waitFor { minik(["logs", "--name", name, "crashy", "--previous"]).out.hasPrefix("run-") })
        // The writable layer: ephemeral-storage, or 1 GiB, and full is ENOSPC.
        let small = minik(["exec", "--name", name, "disk", "-c", "small", "--", "sh", "-c", "dd if=/dev/zero of=/big bs=1M count=64"])
        #expect(small.code != 0 && small.err.contains("No space left on device"), "\(small.err)")
        let df = minik(["exec", "--name", name, "disk", "-c", "default", "--", "df", "-k", "/"]).out
        #expect(df.contains(" \(ContainerRunner.defaultWritableLayer / 1024) "), "\(df)")
        // Nothing of it is mounted where the host sees it.
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains("/pods/default_disk/"), "the writable layer's tmpfs is visible on the host")
        #expect(minik(["down", "--name", name]).code == 0)
        expectNothingLeft(name, pids: [])
    }
}
}
