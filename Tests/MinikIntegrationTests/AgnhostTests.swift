// Root integration test of the agnhost image: pods written the way the Kubernetes e2e
// manifests are (registry.k8s.io/e2e-test-images/agnhost with `args: [netexec, ...]`,
// `command: [/agnhost, serve-hostname]`, porter's SERVE_PORT_ variables, the default
// `pause`) run unchanged, and answer from another pod: /hostname, /dial over UDP and HTTP
// (the JSON e2e's networking checks parse), serve-hostname, porter, `agnhost connect`.
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import Testing

extension RootTests {
@Suite("agnhost image (root)", .serialized)
struct AgnhostTests {
    static let name = "it-agn"

    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: \(name)
    nodes: [{role: control-plane}, {role: worker}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: netserver, labels: {app: netserver}}
    spec:
      nodeName: \(name)-worker
      containers:
      - name: webserver
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: [netexec, --http-port=8080, --udp-port=8081]
        ports: [{name: http, containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: hostnames}
    spec:
      containers:
      - name: serve-hostname
        image: k8s.gcr.io/e2e-test-images/agnhost:2.47
        command: [/agnhost, serve-hostname]
        ports: [{containerPort: 9376}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: porter}
    spec:
      containers:
      - name: porter
        image: agnhost
        args: [porter]
        env: [{name: SERVE_PORT_9001, value: foo}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: test-container}
    spec:
      nodeName: \(name)-control-plane
      containers:
      - name: agnhost-container
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080, --udp-port=8081]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: paused}
    spec:
      containers: [{name: c, image: gcr.io/kubernetes-e2e-test-images/agnhost:2.8}]
    """

    @Test("upstream agnhost manifests: netexec (/hostname, /dial udp and http), serve-hostname, porter, connect, pause")
    func agnhostManifests() throws {
        let name = Self.name
        let spec = try SpecFile(Self.yaml)
        try claim(name)
        defer { cleanUp(name) }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up failed: \(up.err)")

        let ips = podIPs()
        let server = try #require(ips["netserver"]), hostnames = try #require(ips["hostnames"]), porter = try #require(ips["porter"])

        // e2e's checks run `curl` in the test container; busybox wget does the same here.
        func get(_ url: String) -> Result { minik(["exec", "--name", Self.name, "test-container", "--", "wget", "-T", "5", "-qO-", url]) }
        try #require(waitFor { get("http://\(server):8080/hostname").out.trimmed == "netserver" },
                     "netserver /hostname: \(get("http://\(server):8080/hostname"))")

        // /dial from the test container's own netexec, as e2e's DialFromContainer does.
        for proto in ["udp", "http"] {
            let port = proto == "udp" ? 8081 : 8080
            let r = get("http://127.0.0.1:8080/dial?request=hostname&protocol=\(proto)&host=\(server)&port=\(port)&tries=3")
            let dial = try json(r.out)
            #expect(dial["responses"] as? [String] == ["netserver", "netserver", "netserver"], "\(proto) dial: \(r.out) \(r.err)")
            #expect(dial["errors"] == nil, "\(proto) dial: \(r.out)")
        }
        // A port nobody serves: errors, no responses, still a 200.
        let refused = try json(get("http://127.0.0.1:8080/dial?request=hostname&protocol=udp&host=\(server)&port=8082").out)
        #expect(refused["responses"] == nil)
        #expect((refused["errors"] as? [String])?.count == 1)

        // serve-hostname (HTTP on 9376, any path) and porter.
        try #require(waitFor { get("http://\(hostnames):9376/").out.trimmed == "hostnames" }, "serve-hostname: \(get("http://\(hostnames):9376/"))")
        try #require(waitFor { get("http://\(porter):9001/").out.trimmed == "foo" }, "porter: \(get("http://\(porter):9001/"))")

        // agnhost connect: exit 0, or 1 with REFUSED on stderr.
        let ok = minik(["exec", "--name", Self.name, "test-container", "--", "/agnhost", "connect", "\(server):8080", "--timeout=2s"])
        #expect(ok.code == 0, "connect: \(ok.err)")
        let no = minik(["exec", "--name", Self.name, "test-container", "--", "/agnhost", "connect", "\(server):8089", "--timeout=2s"])
        #expect(no.code == 1 && no.err.contains("REFUSED"), "connect to a closed port: \(no.code) \(no.err)")
        let udp = minik(["exec", "--name", Self.name, "test-container", "--", "/agnhost", "connect", "--protocol=udp", "\(server):8081", "--timeout=2s"])
        #expect(udp.code == 0, "connect udp: \(udp.err)")

        // The image's default command is agnhost's: pause, which answers nothing and stays up.
        #expect(waitFor { minik(["logs", "--name", Self.name, "paused", "-c", "c"]).out.contains("Paused") }, "pause logs: \(minik(["logs", "--name", Self.name, "paused", "-c", "c"]))")
        #expect(minik(["exec", "--name", Self.name, "paused", "--", "/agnhost", "connect", "127.0.0.1:8080", "--timeout=1s"]).code == 1)
        let paused = liveState(name)?.pod("paused", namespace: "default")
        #expect(paused?.containers.first?.isRunning == true && paused?.containers.first?.restartCount == 0)

        let down = minik(["down", "--name", name])
        #expect(down.code == 0, "down failed: \(down.err)")
        expectNothingLeft(name, pids: [])
    }

    func podIPs() -> [String: String] {
        guard let items = (try? json(minik(["get", "--name", Self.name, "pods", "-o", "json"]).out))?["items"] as? [[String: Any]] else { return [:] }
        var out: [String: String] = [:]
        for p in items {
            let n = (p["metadata"] as! [String: Any])["name"] as! String
            out[n] = (p["status"] as? [String: Any])?["podIP"] as? String
        }
        return out
    }
}
}
