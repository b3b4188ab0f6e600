// Root integration test of NetworkPolicy: policies written with kubectl, proven with
// traffic between pods of two nodes and two namespaces, followed through label changes
// and deletion, named by `minik trace`, and the node's own probes never blocked.
import Foundation
import MinikRuntime
import Testing

extension RootTests {
@Suite("NetworkPolicy (root)", .serialized)
struct NetworkPolicyTests {
    static let name = "it-netpol"

    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: \(name)
    nodes: [{role: control-plane}, {role: worker}, {role: worker}]
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: team-a, labels: {team: a}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web, labels: {app: web}}
    spec:
      nodeName: \(name)-worker
      containers:
      - name: netexec
        image: netexec
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: client, labels: {app: client}}
    spec:
      nodeName: \(name)-worker2
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: near, labels: {app: other}}
    spec:
      nodeName: \(name)-worker
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: far, namespace: team-a, labels: {app: client}}
    spec:
      nodeName: \(name)-worker2
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
    """

    static let cacheDir = "/tmp/minik-tests-\(getpid())-netpolcache"

    func kubectl(_ args: [String], input: String? = nil) -> Result {
        guard let input else { return shell([kubectlPath!, "--cache-dir", Self.cacheDir, "--context", "minik-\(Self.name)"] + args) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("netpol-\(getpid())-\(UUID().uuidString).yaml")
        try? input.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        return shell([kubectlPath!, "--cache-dir", Self.cacheDir, "--context", "minik-\(Self.name)"] + args + ["-f", file.path])
    }

    /// Whether `pod` (ns/name) gets web's /hostname within 2 s.
    func reaches(_ pod: String, _ web: String) -> Bool {
        let parts = pod.split(separator: "/").map(String.init)
        let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", parts[0])
        return minik(["exec", "--name", Self.name, "-n", ns, name, "--", "timeout", "2", "wget", "-qO-", "http://\(web):8080/hostname"]).out == "web"
    }

    func chains(_ node: String) -> [String] {
        minik(["node", "exec", "--name", Self.name, "\(Self.name)-\(node)", "--", "iptables-save", "-t", "filter"]).out
            .split(separator: "\n").map(String.init).filter { $0.contains("MINIK-NP") }
    }

    @Test("policies from kubectl: deny, allow by pod and namespace labels and named port, label changes, deletion; probes pass; trace names the rule")
    func policies() throws {
        guard kubectlPath != nil else { Issue.record("kubectl is not installed (make deps)"); return }
        let name = Self.name
        let spec = try SpecFile(Self.yaml)
        try claim(name)
        defer { cleanUp(name); try? FileManager.default.removeItem(atPath: Self.cacheDir) }
        let up = minik(["up", spec.path])
        try #require(up.code == 0, "up: \(up.err)")
        let state = try #require(liveState(name))
        let web = try #require(state.pods.first { $0.name == "web" }?.ip?.description)
        #expect(waitFor { reaches("client", web) }, "no policy: everyone reaches web")
        #expect(reaches("near", web) && reaches("team-a/far", web))

        // Deny all ingress to web.
        let deny = kubectl(["apply"], input: """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: web-deny}
            spec:
              podSelector: {matchLabels: {app: web}}
            """)
        #expect(deny.out.trimmed == "networkpolicy.networking.k8s.io/web-deny created", "\(deny)")
        #expect(waitFor { !reaches("client", web) }, "denied across nodes")
        #expect(!reaches("near", web), "denied on web's own node (bridged, seen with bridge netfilter)")
        let table = kubectl(["get", "netpol"]).out
        #expect(table.contains("web-deny") && table.contains("app=web"), "\(table)")
        // kubelet's probes come from the node itself: always allowed, web stays ready.
        sleep(3)
        let ready = kubectl(["get", "pod", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]).out
        #expect(ready == "True", "web ready behind deny-all: \(ready)")
        var trace = minik(["trace", "--name", name, "near", "web", "--port", "8080/TCP"])
        #expect(trace.code == 1 && trace.out.contains("default/web ingress is not allowed by default/web-deny"), "\(trace.out)")
        #expect(chains("worker").contains { $0.contains("-j DROP") && $0.contains("default/web ingress") })
        #expect(chains("worker2").allSatisfy { $0.hasPrefix(":MINIK-NETPOL ") || $0.contains("-j MINIK-NETPOL") }, "\(chains("worker2"))")

        // Allow clients of this namespace, on the named port, and anything from team=a namespaces.
        let allow = kubectl(["apply"], input: """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: web-allow}
            spec:
              podSelector: {matchLabels: {app: web}}
              ingress:
              - from: [{podSelector: {matchLabels: {app: client}}}]
                ports: [{port: http}]
              - from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: client}}}]
            """)
        #expect(allow.code == 0, "\(allow)")
        #expect(waitFor { reaches("client", web) }, "allowed by web-allow's first rule")
        #expect(reaches("team-a/far", web), "allowed by its namespace's label")
        #expect(!reaches("near", web), "still denied")
        trace = minik(["trace", "--name", name, "client", "web", "--port", "8080/TCP"])
        #expect(trace.code == 0 && trace.out.contains("default/web-allow spec.ingress[0]"), "\(trace.out)")

        // A label change is followed: near becomes a client.
        #expect(kubectl(["label", "pod", "near", "app=client", "--overwrite"]).code == 0)
        #expect(waitFor { reaches("near", web) }, "near, relabelled, is allowed")
        // A namespace label change too: team-a loses its label.
        #expect(kubectl(["label", "namespace", "team-a", "team-"]).code == 0)
        #expect(waitFor { !reaches("team-a/far", web) }, "far's namespace no longer matches")

        // Egress: client may only talk to web; near (on web's node) is out of reach.
        let near = try #require(state.pods.first { $0.name == "near" }?.ip?.description)
        #expect(kubectl(["apply"], input: """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: client-egress}
            spec:
              podSelector: {matchLabels: {app: client}}
              policyTypes: [Egress]
              egress: [{to: [{ipBlock: {cidr: \(web)/32}}]}]
            """).code == 0)
        #expect(waitFor { minik(["exec", "--name", name, "client", "--", "ping", "-c", "1", "-W", "1", near]).code != 0 }, "client egress to near denied")
        #expect(reaches("client", web), "client egress to web allowed (ipBlock)")

        // Deleting the policies lifts them.
        #expect(kubectl(["delete", "netpol", "web-deny", "web-allow", "client-egress"]).code == 0)
        #expect(waitFor { reaches("team-a/far", web) }, "no policy: everyone again")
        #expect(chains("worker").filter { !$0.hasPrefix(":MINIK-NETPOL ") && !$0.contains("-j MINIK-NETPOL") }.isEmpty, "\(chains("worker"))")
        #expect(kubectl(["get", "netpol", "-A"]).err.contains("No resources found"))
    }
}
}
