// Root integration tests of the pod model: real containers from local images sharing
// their sandbox's network, isolated from each other and the host, restarted when they die.
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import Testing

extension RootTests {
@Suite("Containers (root)", .serialized)
struct ContainerTests {
    static let podsYAML = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: it-ctr
    nodes: [{role: control-plane}, {role: worker}]
    ---
    apiVersion: minik.dev/v1alpha1
    kind: MinikConfig
    restartBackoffSeconds: 0
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web, labels: {app: web}}
    spec:
      initContainers:
      - name: init
        image: busybox
        command: ["sh", "-c", "echo init-done; sleep 0.3"]
      containers:
      - name: server
        image: busybox
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
      - name: sidecar
        image: busybox:1.36
        command: ["sleep", "infinity"]
      - name: second
        image: busybox
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
      - name: broken
        image: busybox
        command: ["foo"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: admin}
    spec:
      containers:
      - name: c
        image: docker.io/library/busybox
        command: ["sleep", "infinity"]
        securityContext: {capabilities: {add: [NET_ADMIN]}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: crash}
    spec:
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "echo run-$(cat /proc/uptime); sleep infinity"]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: hog}
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "sleep 0.5; x=$(head -c 100000000 /dev/zero | tr '\\\\0' a); echo survived"]
        resources: {limits: {memory: 16Mi}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: shared}
    spec:
      shareProcessNamespace: true
      containers:
      - {name: a, image: busybox, command: [sleep, infinity]}
      - {name: b, image: busybox, command: [sh, -c, "sleep 1000000"]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: net}
    spec:
      containers:
      - {name: netexec, image: netexec}
    """

    @Test("pod model: localhost, one port per pod, hostname, isolation, capabilities, init, logs, restarts, exec -it")
    func podModel() throws {
        let spec = try SpecFile(Self.podsYAML)
        try claim("it-ctr")
        defer { cleanUp("it-ctr") }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")
        try #require(waitFor { pod("web")?.containers.first { $0.name == "sidecar" }?.isRunning == true }, "web never ran")
        let web = try #require(pod("web"))
        let webIP = try #require(web.ip).description

        // Containers of a pod talk over localhost.
        let page = minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "wget", "-qO-", "http://localhost:8080/"])
        #expect(page.out.contains("minik busybox httpd"), "\(page.err)")
        // A second container binding the same port fails; the first keeps serving.
        #expect(waitFor { logs("web", "second").contains("Address already in use") }, "second: \(logs("web", "second"))")
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "wget", "-qO-", "http://\(webIP):8080/"]).out.contains("minik busybox httpd"))
        // hostname = pod name, in every container.
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "hostname"]).out.trimmingCharacters(in: .whitespacesAndNewlines) == "web")
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "cat", "/etc/hostname"]).out.contains("web"))
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "cat", "/etc/hosts"]).out.contains("\(webIP)\tweb"))

        // Isolation: a container sees its own processes only (its own PID namespace).
        let ps = minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "ps", "-o", "pid,args"]).out
        #expect(ps.contains("sleep infinity"))
        #expect(!ps.contains("httpd"), "sees the other container: \(ps)")
        #expect(!ps.contains("pause") && !ps.contains("minik"), "sees the host: \(ps)")
        let pid1 = minik(["exec", "--name", "it-ctr", "crash", "--", "cat", "/proc/1/cmdline"]).out
        #expect(pid1.hasPrefix("sh") || pid1.hasPrefix("sleep"), "PID 1 of the container is its command: \(pid1)")
        // shareProcessNamespace: the pod's containers see each other, pause is PID 1, no host.
        #expect(waitFor { pod("shared")?.appContainers.allSatisfy(\.isRunning) == true })
        let sharedPS = minik(["exec", "--name", "it-ctr", "shared", "-c", "a", "--", "ps", "-o", "pid,args"]).out
        #expect(sharedPS.contains("sleep 1000000") && sharedPS.contains("sleep infinity"), "\(sharedPS)")
        #expect(sharedPS.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("1 ") && $0.contains("pause") }, "\(sharedPS)")
        #expect(!sharedPS.contains("__supervise") && !sharedPS.contains("httpd") && sharedPS.split(separator: "\n").count == 5, "\(sharedPS)")
        // No mounts, no route changes without NET_ADMIN; with it, yes.
        let mount = minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"])
        #expect(mount.code != 0)
        let route = minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "ip", "route", "add", "10.9.9.0/24", "dev", "eth0"])
        #expect(route.code != 0)
        #expect(route.err.contains("Operation not permitted"))
        #expect(minik(["exec", "--name", "it-ctr", "admin", "--", "ip", "route", "add", "10.9.9.0/24", "dev", "eth0"]).code == 0)
        #expect(minik(["exec", "--name", "it-ctr", "admin", "--", "ip", "route"]).out.contains("10.9.9.0/24"))
        // The image is the root filesystem, writable per container.
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "sh", "-c", "echo x > /www/new && cat /www/new"]).out.contains("x"))
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "server", "--", "ls", "/www"]).out.contains("new") == false)

        // Init containers ran first, to completion.
        let initC = try #require(web.containers.first { $0.name == "init" })
        #expect(initC.state == .terminated && initC.termination?.exitCode == 0)
        let serverStart = try #require(web.containers.first { $0.name == "server" }?.startedAt)
        #expect(serverStart >= initC.termination!.finishedAt)
        #expect(logs("web", "init").contains("init-done"))

        // A command missing from the image: an error state with the reason; the rest runs.
        #expect(waitFor { (pod("web")?.containers.first { $0.name == "broken" }?.restartCount ?? 0) >= 1 })
        let describe = minik(["describe", "--name", "it-ctr", "pod", "web"]).out
        #expect(describe.contains("exec: \"foo\": not found"), "\(describe)")
        // (Its log is the current run's: just after a restart it may not have failed yet.)
        #expect(waitFor { logs("web", "broken").contains("exec: \"foo\": not found") })
        #expect(pod("web")?.containers.first { $0.name == "server" }?.isRunning == true)

        // netexec answers like the e2e image.
        let netIP = try #require(pod("net")?.ip).description
        #expect(waitFor { minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "wget", "-qO-", "http://\(netIP):8080/hostname"]).out == "net" })
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "wget", "-qO-", "http://\(netIP):8080/echo?msg=hello%20there"]).out == "hello there")
        #expect(minik(["exec", "--name", "it-ctr", "web", "-c", "sidecar", "--", "wget", "-qO-", "http://\(netIP):8080/clientip"]).out.hasPrefix("\(webIP):"))

        // Killing a container's process 10 times: restarted each time, same pod IP, RESTARTS grows.
        let crashIP = try #require(pod("crash")?.ip)
        for n in 1...10 {
            let c = try #require(pod("crash")?.containers.first)
            #expect(kill(c.pid, SIGKILL) == 0)
            #expect(waitFor { (pod("crash")?.containers.first).map { $0.isRunning && $0.restartCount == n } == true },
                    "restart \(n) did not happen")
            #expect(pod("crash")?.ip == crashIP)
        }
        let table = minik(["get", "--name", "it-ctr", "pods"]).out
        #expect(table.split(separator: "\n").contains { $0.hasPrefix("crash ") && $0.contains(" 10 (") }, "\(table)")
        // Logs survive a restart: --previous is the run before the last one.
        let current = logs("crash", "c"), previous = minik(["logs", "--name", "it-ctr", "crash", "--previous"]).out
        #expect(current.hasPrefix("run-") && previous.hasPrefix("run-") && current != previous)

        // exec -it: a real terminal.
        let tty = shell(["script", "-qec", "\(minikBinary) exec --name it-ctr -it web -c sidecar -- sh -c 'test -t 0 && echo IS-A-TTY'", "/dev/null"])
        #expect(tty.out.contains("IS-A-TTY"), "\(tty.out) \(tty.err)")

        // Limits: memory from resources.limits in the container's cgroup, pids.max for all;
        // going over the memory limit is an OOM kill.
        let memDir = "\(Cgroups.dir("memory", cluster: "it-ctr"))/default_hog_c"
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/cgroup.procs") {
            #expect((try? String(contentsOfFile: "\(memDir)/memory.limit_in_bytes", encoding: .utf8))?.hasPrefix("16777216") == true)
            #expect(waitFor { pod("hog")?.containers.first?.termination?.reason == "OOMKilled" }, "\(String(describing: pod("hog")?.containers.first))")
            #expect(pod("hog")?.statusText == "OOMKilled")
        } else {
            // No memory controller on this host: the limit is reported as not applied.
            #expect(waitFor { logs("hog", "c").contains("memory.limit_in_bytes not applied") })
        }
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/cgroup.procs") {
            let pidsDir = "\(Cgroups.dir("pids", cluster: "it-ctr"))/default_crash_c"
            #expect((try? String(contentsOfFile: "\(pidsDir)/pids.max", encoding: .utf8))?.hasPrefix("1024") == true)
            let crashPID = try #require(pod("crash")?.containers.first?.pid)
            #expect((try? String(contentsOfFile: "\(pidsDir)/cgroup.procs", encoding: .utf8))?.contains("\(crashPID)") == true)
        }

        // The pause process dies: the sandbox is re-created, same IP.
        let before = try #require(pod("admin"))
        #expect(kill(before.pid, SIGKILL) == 0)
        #expect(waitFor { (pod("admin")).map { $0.pid != before.pid && $0.containers.first?.isRunning == true } == true })
        #expect(pod("admin")?.ip == before.ip)

        let pids = (state()?.pods ?? []).flatMap { [$0.pid] + $0.containers.map(\.pid) }
        #expect(minik(["down", "--name", "it-ctr"]).code == 0)
        expectNothingLeft("it-ctr", pids: pids)
        #expect(!FileManager.default.fileExists(atPath: Cgroups.dir("memory", cluster: "it-ctr")))
        #expect(!FileManager.default.fileExists(atPath: Cgroups.dir("pids", cluster: "it-ctr")))
    }

    @Test("apply, scale and delete change a running cluster; IPs go back to the pool")
    func applyScaleDelete() throws {
        // (sleep as PID 1 ignores SIGTERM: a grace period of 1 s, not 30, for the pods
        // that scaling down deletes.)
        let spec = try SpecFile("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: it-ctr
        nodes: [{role: control-plane}, {role: worker}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {terminationGracePeriodSeconds: 1, containers: [{name: c, image: busybox, command: [sleep, infinity]}]}
        """)
        try claim("it-ctr")
        defer { cleanUp("it-ctr") }
        try #require(minik(["up", "-q", spec.path]).code == 0)
        let more = try SpecFile("""
        apiVersion: v1
        kind: Pod
        metadata: {name: extra, namespace: tools}
        spec: {containers: [{name: c, image: netexec}]}
        """)
        let applied = minik(["apply", "--name", "it-ctr", "-f", more.path])
        #expect(applied.code == 0 && applied.out.contains("pod/extra created"), "\(applied.err)")
        #expect(pod("extra", "tools")?.containers.first?.isRunning == true)
        let bad = try SpecFile("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: nope}]}\n")
        let rejected = minik(["apply", "--name", "it-ctr", "-f", bad.path])
        #expect(rejected.code != 0 && rejected.err.contains("unknown image \"nope\""))
        #expect(pod("x", "default") == nil)

        #expect(minik(["scale", "--name", "it-ctr", "deployment", "web", "--replicas", "5"]).code == 0)
        #expect((state()?.pods.filter { $0.owner == "Deployment/web" }.count) == 5)
        #expect(state()?.pods.allSatisfy { $0.phase == .running } == true)
        let ipam = Naming.ipamDir("it-ctr", node: "it-ctr-worker")
        let allocated = { (try? FileManager.default.contentsOfDirectory(atPath: ipam))?.filter { $0.hasPrefix("10.") }.count ?? -1 }
        #expect(allocated() == 6) // 5 web + extra
        #expect(minik(["scale", "--name", "it-ctr", "deployment", "web", "--replicas", "1"]).code == 0)
        // The pods scaled away terminate (their grace period) before their IPs go back.
        #expect(waitFor { allocated() == 2 })
        // A Deployment's pod deleted is replaced (its ReplicaSet makes a new pod, of a new
        // name), with an IP from the pool; the old one goes.
        let web = deploymentPods("it-ctr", "web")
        try #require(web.count == 1, "\(web)")
        let deleted = minik(["delete", "--name", "it-ctr", "pod", web[0]])
        #expect(deleted.code == 0 && deleted.out.contains("pod \"\(web[0])\" deleted"), "\(deleted.err)")
        #expect(waitFor { pod(web[0]) == nil })
        let replaced = { (now: [String]) in now.count == 1 && now[0] != web[0] && pod(now[0])?.phase == .running }
        #expect(waitFor { replaced(deploymentPods("it-ctr", "web")) })
        #expect(waitFor { allocated() == 2 })
        #expect(minik(["delete", "--name", "it-ctr", "pod", "extra", "-n", "tools"]).code == 0)
        #expect(minik(["delete", "--name", "it-ctr", "deployment", "web"]).code == 0)
        // Its pods are deleted gracefully (1 s, minik delete's period), then gone.
        #expect(waitFor { allocated() == 0 })
        #expect(waitFor { state()?.pods.filter { $0.namespace != "kube-system" }.isEmpty == true }) // the DNS pods stay
        #expect(waitFor { NetNamespace.list(prefix: Naming.netnsPrefix("it-ctr")).filter { $0.contains("default.") || $0.contains("tools.") }.isEmpty })
        #expect(minik(["down", "--name", "it-ctr"]).code == 0)
        expectNothingLeft("it-ctr", pids: [])
    }

    func state() -> ClusterState? {
        liveState("it-ctr")
    }

    func pod(_ name: String, _ namespace: String = "default") -> PodState? { state()?.pod(name, namespace: namespace) }

    func logs(_ pod: String, _ container: String) -> String { minik(["logs", "--name", "it-ctr", pod, "-c", container]).out }
}

}

/// Polls until the condition holds (up to 10 s).
func waitFor(_ condition: () -> Bool) -> Bool {
    for _ in 0..<100 {
        if condition() { return true }
        usleep(100_000)
    }
    return false
}
