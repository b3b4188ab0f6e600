// Root test of a supervisor's death and a new supervisor's adoption of the running
// cluster: while none runs, commands say so; after `minik up` of the same spec nothing
// healthy was restarted, what died meanwhile is restarted by its policy, and restarts,
// probes, the proxy and the published port work again.
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import Testing

extension RootTests {
@Suite("Adopting a cluster whose supervisor died (root)", .serialized)
struct AdoptionTests {
    static let cluster = "it-adopt"

    func state() -> ClusterState? {
        liveState(Self.cluster)
    }

    func supervisor() -> Int32? {
        guard let s = try? ClusterState.load(cluster: Self.cluster), Sandbox.isAlive(s.supervisorPID, startTime: s.supervisorStartTime) else { return nil }
        return s.supervisorPID
    }

    @Test("kill -9 of the supervisor: commands say so; up adopts the cluster without restarting a healthy pod")
    func adoption() throws {
        try claim(Self.cluster)
        let port = try #require(PortForwarderTests.freePort(in: 39380..<39480))
        let spec = try SpecFile("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: \(Self.cluster)
        nodes:
        - role: control-plane
        - role: worker
          extraPortMappings: [{containerPort: 30081, hostPort: \(port)}]
        ---
        apiVersion: minik.dev/v1alpha1
        kind: MinikConfig
        restartBackoffSeconds: 0
        dns: {enabled: false}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - name: c
                image: netexec
                readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          type: NodePort
          selector: {app: web}
          ports: [{port: 80, targetPort: 8080, nodePort: 30081}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: client}
        spec: {containers: [{name: c, image: busybox, command: [sleep, infinity]}]}
        """)
        defer { cleanUp(Self.cluster) }
        try #require(minik(["up", "-q", spec.path]).code == 0)
        try #require(waitFor { state()?.pods.filter { $0.name.hasPrefix("web-") && $0.isReady }.count == 3 })
        let before = try #require(state())
        let web = deploymentPods(Self.cluster, "web")
        try #require(web.count == 3, "\(web)")
        let web1 = try #require(before.pod(web[1], namespace: "default"))

        // The supervisor dies; the cluster runs on, unsupervised.
        let sup = try #require(supervisor())
        kill(sup, SIGKILL)
        #expect(waitFor { supervisor() == nil })
        let get = minik(["get", "pods", "--name", Self.cluster])
        #expect(get.code == 0 && get.err.contains("the supervisor of cluster \"\(Self.cluster)\" is not running"), "\(get.err)")
        #expect(get.err.contains("as of "))
        let apply = minik(["scale", "deployment", "web", "--replicas", "4", "--name", Self.cluster])
        #expect(apply.code != 0 && apply.err.contains("is not running"), "\(apply.err)")
        // A container dies while nobody watches.
        let dead = try #require(web1.containers.first?.pid)
        kill(dead, SIGKILL)
        // Nobody reaps it (its parent died), unless the host's init does: then its exit
        // status is unknown; while it is a zombie, the new supervisor reads it.
        usleep(200_000)
        let zombie = ((try? String(contentsOfFile: "/proc/\(dead)/stat", encoding: .utf8))?.split(separator: ")").last?.dropFirst().first) == "Z"

        let adopt = minik(["up", spec.path])
        #expect(adopt.code == 0, "\(adopt.err)")
        #expect(adopt.out.contains("adopting it"), "\(adopt.out)")
        let after = try #require(state())
        #expect(after.supervisorPID != sup)
        // Nothing healthy was restarted: same sandboxes, same container processes, same age.
        for p in before.pods {
            let q = try #require(after.pod(p.name, namespace: p.namespace))
            #expect(q.pid == p.pid && q.startTime == p.startTime, "\(p.key)'s sandbox was re-created")
            #expect(abs(q.createdAt.timeIntervalSince(p.createdAt)) < 0.001, "\(p.key)'s age was reset") // (the state keeps microseconds)
            guard p.key != web1.key else { continue }
            #expect(q.containers.first?.pid == p.containers.first?.pid, "\(p.key) was restarted")
            #expect(q.containers.first?.restartCount == 0)
        }
        // What died meanwhile was restarted by its policy, and its probe made it ready.
        #expect(waitFor { state()?.pod(web[1], namespace: "default").map { $0.isReady && $0.containers.first?.restartCount == 1 } == true })
        let last = state()?.pod(web[1], namespace: "default")?.containers.first?.lastTermination
        #expect(last?.exitCode == 137)
        #expect(last?.reason == (zombie ? "Error" : "ContainerStatusUnknown"), "zombie=\(zombie): \(String(describing: last))")
        // Restarts go on for adopted processes (not our children).
        let web0 = try #require(after.pod(web[0], namespace: "default")?.containers.first?.pid)
        kill(web0, SIGKILL)
        #expect(waitFor { state()?.pod(web[0], namespace: "default")?.containers.first.map { $0.isRunning && $0.restartCount == 1 } == true })
        // The proxy serves every endpoint again, and the published port is back.
        let ip = try #require(after.services.first { $0.spec.name == "web" }?.spec.clusterIP).description
        var seen = Set<String>()
        for _ in 0..<60 where seen.count < 3 {
            let r = minik(["exec", "--name", Self.cluster, "client", "--", "wget", "-T", "2", "-qO-", "http://\(ip)/hostname"])
            if r.code == 0 { seen.insert(r.out) }
        }
        #expect(seen == Set(web), "\(seen)")
        #expect(waitFor { shell(["curl", "-s", "-m", "2", "http://127.0.0.1:\(port)/hostname"]).out.hasPrefix("web-") })
        #expect(minik(["get", "pods", "--name", Self.cluster]).err.isEmpty)

        let pids = after.pods.flatMap { [$0.pid] + $0.containers.map(\.pid) }
        #expect(minik(["down", "--name", Self.cluster]).code == 0)
        expectNothingLeft(Self.cluster, pids: pids)
    }
}
}
