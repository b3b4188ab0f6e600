import Foundation
import MinikSpec
import Testing

let clusterHeader = """
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: lab
nodes:
- role: control-plane
- role: worker
- role: worker

"""

func pod(_ name: String, ns: String? = nil, node: String? = nil) -> String {
    """
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: \(name)
    \(ns.map { "  namespace: \($0)" } ?? "")
    spec:
    \(node.map { "  nodeName: \($0)" } ?? "")
      containers:
      - name: c
        image: busybox

    """
}

/// A Deployment of `replicas` pods labelled app: name; `body` is more of its pod spec.
func deployment(_ name: String, ns: String = "default", replicas: Int = 1, _ body: String = "") -> String {
    """
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: \(name), namespace: \(ns)}
    spec:
      replicas: \(replicas)
      selector: {matchLabels: {app: \(name)}}
      template:
        metadata: {labels: {app: \(name)}}
        spec:
    \(indent(body, 6))
          containers: [{name: c, image: busybox}]

    """
}

/// `text` indented by `by` spaces (empty lines stay empty), to nest a body in a document.
func indent(_ text: String, _ by: Int) -> String {
    let pad = String(repeating: " ", count: by)
    return text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : pad + $0 }.joined(separator: "\n")
}

/// A Service document; `body` is its spec, written without indentation.
func service(_ name: String, ns: String = "default", _ body: String) -> String {
    "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: \(name)\n  namespace: \(ns)\nspec:\n\(indent(body, 2))\n"
}

/// 1-based number of the first line containing `needle` (after the first line containing
/// `marker`, when given).
func line(of needle: String, after marker: String? = nil, in text: String) -> Int {
    let lines = text.components(separatedBy: "\n")
    var start = 0
    if let marker, let m = lines.firstIndex(where: { $0.contains(marker) }) { start = m + 1 }
    return lines[start...].firstIndex { $0.contains(needle) }.map { $0 + 1 } ?? -1
}

/// The spec (or, with `base`, an apply to that cluster) is rejected with `count` problems,
/// one of which says `phrase` and names `file`:`line` and `field`.
func expectRejected(_ text: String, field: String, line: Int, saying phrase: String, count: Int = 1,
                    base: ClusterSpec? = nil, file: String = "cluster.yaml",
                    sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    let p: [SpecProblem]
    do {
        if let base { _ = try SpecLoader.apply(text, file: file, to: base) } else { _ = try SpecLoader.parse(text, file: file) }
        Issue.record("expected the spec to be rejected", sourceLocation: sourceLocation)
        return
    } catch {
        p = error.problems
    }
    #expect(p.count == count, "problems: \(p)", sourceLocation: sourceLocation)
    guard let hit = p.first(where: { $0.message.contains(phrase) }) else {
        Issue.record("no problem says \"\(phrase)\": \(p)", sourceLocation: sourceLocation)
        return
    }
    #expect(line > 0, "the test's needle was not found", sourceLocation: sourceLocation)
    let d = SpecError([hit]).description
    #expect(d.hasPrefix("\(file):\(line):"), "\(d)", sourceLocation: sourceLocation)
    if !field.isEmpty { #expect(d.contains(": \(field): "), "\(d)", sourceLocation: sourceLocation) }
    #expect(hit.location?.field == field, "\(d)", sourceLocation: sourceLocation)
}

/// Parses text that must be rejected; returns every problem.
func problems(_ text: String) -> [SpecProblem] {
    do {
        _ = try SpecLoader.parse(text, file: "cluster.yaml")
        Issue.record("expected the spec to be rejected")
        return []
    } catch {
        return error.problems
    }
}

@Suite("Spec: valid files")
struct SpecValidTests {
    @Test func kindClusterLoadsWithKindNamesAndPodCIDRs() throws {
        let spec = try SpecLoader.parse(clusterHeader, file: "c.yaml")
        #expect(spec.name == "lab")
        #expect(spec.nodes.map(\.name) == ["lab-control-plane", "lab-worker", "lab-worker2"])
        #expect(spec.nodes.map(\.podCIDR.description) == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"])
        #expect(spec.nodes.map(\.internalIP.description) == ["172.18.0.2", "172.18.0.3", "172.18.0.4"])
        #expect(spec.podSubnet.description == "10.244.0.0/16")
        #expect(spec.serviceSubnet.description == "10.96.0.0/12")
        #expect(spec.network.backend == .vxlan)
        #expect(spec.network.mtu == 1500)
        #expect(spec.network.podMTU == 1450)
    }

    @Test func defaultsToOneControlPlaneNamedKind() throws {
        let spec = try SpecLoader.parse("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n", file: "c.yaml")
        #expect(spec.name == "kind")
        #expect(spec.nodes.map(\.name) == ["kind-control-plane"])
    }

    @Test func secondControlPlaneIsNamedLikeKind() throws {
        let spec = try SpecLoader.parse("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        nodes: [{role: control-plane}, {role: control-plane}, {role: worker}]
        """, file: "c.yaml")
        #expect(spec.nodes.map(\.name) == ["kind-control-plane", "kind-control-plane2", "kind-worker"])
    }

    @Test func kindOnlyFieldsAreAcceptedWithAWarning() throws {
        let spec = try SpecLoader.parse("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        kubeadmConfigPatches: ["x"]
        nodes:
        - role: control-plane
          image: kindest/node:v1.29.0
        """, file: "c.yaml")
        #expect(spec.warnings.count == 2)
        #expect(spec.warnings.contains { $0.contains("c.yaml:3:1") && $0.contains("kubeadmConfigPatches") })
        #expect(spec.warnings.contains { $0.contains("c.yaml:6:3") && $0.contains("image") })
    }

    @Test func podsSpreadOverWorkersNotTheControlPlane() throws {
        let text = clusterHeader + (0..<6).map { pod("p\($0)") }.joined()
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let counts = Dictionary(grouping: spec.pods.filter { $0.namespace == "default" }, by: \.nodeName).mapValues(\.count)
        #expect(counts == ["lab-worker": 3, "lab-worker2": 3])
        // The cluster DNS pods are minik's, on the control-plane as kind runs CoreDNS.
        #expect(spec.pods.filter { $0.namespace == "kube-system" }.map(\.nodeName) == ["lab-control-plane", "lab-control-plane"])
    }

    @Test func controlPlaneTakesPodsWhenThereIsNoWorker() throws {
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: solo\n" + pod("a")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        #expect(spec.pods.filter { $0.namespace == "default" }.map(\.nodeName) == ["solo-control-plane"])
    }

    @Test func nodeNameAndNodeSelectorAreHonoured() throws {
        let text = clusterHeader.replacingOccurrences(of: "- role: worker\n- role: worker", with: "- role: worker\n- role: worker\n  labels: {disk: ssd}")
            + pod("pinned", node: "lab-control-plane") + """
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: fast}
            spec:
              nodeSelector: {disk: ssd}
              containers: [{name: c, image: busybox}]
            """
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        #expect(spec.pods.first { $0.name == "pinned" }?.nodeName == "lab-control-plane")
        #expect(spec.pods.first { $0.name == "fast" }?.nodeName == "lab-worker2")
    }

    @Test func deploymentExpandsToReplicas() throws {
        let text = clusterHeader + """
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: shop}
        spec:
          replicas: 3
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web, tier: fe}}
            spec:
              containers:
              - name: server
                image: busybox
                command: [httpd, -f]
                args: [-p, "8080"]
                env: [{name: A, value: b}]
                ports: [{name: http, containerPort: 8080}]
        """
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let pods = spec.pods.filter { $0.namespace == "shop" }
        #expect(pods.count == 3 && pods.map(\.name).allSatisfy(isReplicaName("web")))
        #expect(pods.allSatisfy { $0.labels["tier"] == "fe" && $0.owner == "Deployment/web" })
        #expect(spec.pods.count == 5) // and the two cluster DNS pods
        let c = try #require(pods.first?.containers.first)
        #expect(c.command == ["httpd", "-f"])
        #expect(c.args == ["-p", "8080"])
        #expect(c.ports == [ContainerPort(name: "http", containerPort: 8080, proto: "TCP")])
        #expect(spec.namespaces.contains("shop"))
    }

    @Test func minikConfigSetsBackendUnderlayAndMTU() throws {
        let spec = try SpecLoader.parse(clusterHeader + """
        ---
        apiVersion: minik.dev/v1alpha1
        kind: MinikConfig
        network: {backend: host-gw, underlaySubnet: 192.168.100.0/24, mtu: 9000}
        """, file: "c.yaml")
        #expect(spec.network.backend == .hostGW)
        #expect(spec.network.podMTU == 9000)
        #expect(spec.nodes[1].internalIP.description == "192.168.100.3")
    }
}

@Suite("Spec: bad input names its place")
struct SpecRejectTests {
    @Test func malformedYAMLGivesTheLine() {
        let p = problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  labels: {a: b\n")
        #expect(p.count == 1)
        #expect(p[0].description.hasPrefix("cluster.yaml:"))
        #expect(p[0].message.contains("malformed YAML"))
        #expect((p[0].location?.line ?? 0) >= 5)
    }

    @Test func unknownKind() {
        let p = problems("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n")
        #expect(p.first?.message.contains("unknown kind \"Secret\"") == true)
        #expect(p.first?.location?.line == 2)
    }

    @Test func wrongAPIVersion() {
        let p = problems("apiVersion: kind.x-k8s.io/v1alpha3\nkind: Cluster\n")
        #expect(p.first?.message.contains("not valid for kind Cluster (use kind.x-k8s.io/v1alpha4)") == true)
        #expect(p.first?.location?.line == 1)
    }

    @Test func unknownFieldIsAnErrorWithASuggestion() {
        let p = problems(clusterHeader.replacingOccurrences(of: "- role: worker\n- role: worker", with: "- role: worker\n- rol: worker"))
        #expect(p.count == 1)
        #expect(p[0].location?.line == 7)
        #expect(p[0].location?.field == "nodes[2].rol")
        #expect(p[0].message.contains("unknown field \"rol\""))
        #expect(p[0].message.contains("did you mean \"role\""))
    }

    @Test func unknownFieldInAPod() {
        let p = problems(clusterHeader + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox, imgae: x}]\n")
        #expect(p.first?.message.contains("unknown field \"imgae\"") == true)
        #expect(p.first?.location?.field == "spec.containers[0].imgae")
    }

    @Test func invalidCIDR() {
        let p = problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.244.0.0/33\n")
        #expect(p.first?.message.contains("invalid CIDR") == true)
        #expect(p.first?.location?.line == 4)
        let q = problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.244.1.0/16\n")
        #expect(q.first?.message.contains("did you mean 10.244.0.0/16") == true)
    }

    @Test func overlappingSubnets() {
        let p = problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.96.0.0/16\n")
        #expect(p.contains { $0.message.contains("serviceSubnet 10.96.0.0/12 overlaps podSubnet 10.96.0.0/16") })
        let q = problems(clusterHeader + "---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\nnetwork: {underlaySubnet: 10.244.128.0/24}\n")
        #expect(q.contains { $0.message.contains("underlaySubnet 10.244.128.0/24 overlaps podSubnet") && $0.location?.line == 11 })
    }

    @Test func podSubnetTooSmallForTheNodes() {
        let p = problems(clusterHeader.replacingOccurrences(of: "name: lab\n", with: "name: lab\nnetworking: {podSubnet: 10.244.0.0/23}\n"))
        #expect(p.first?.message.contains("holds 2 node podCIDRs (/24) but the cluster has 3 nodes") == true)
    }

    @Test func tooManyPodsOnANode() {
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: one\n" + (0...253).map { pod("p\($0)") }.joined()
        let p = problems(text)
        #expect(p.count == 1)
        #expect(p[0].message.contains("pod number 254 on node one-control-plane"))
        #expect(p[0].message.contains("holds 253 pods"))
    }

    @Test func duplicateNames() {
        let p = problems(clusterHeader + pod("a") + pod("a"))
        #expect(p.first?.message.contains("pod default/a is defined twice") == true)
        let q = problems(clusterHeader + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: x}, {name: c, image: y}]\n")
        #expect(q.first?.message.contains("container name \"c\" is used twice") == true)
        // The same name in two namespaces is fine.
        #expect((try? SpecLoader.parse(clusterHeader + pod("a") + pod("a", ns: "other"), file: "c")) != nil)
    }

    @Test func namesMustBeDNSLabels() {
        let p = problems(clusterHeader + pod("Web_1"))
        #expect(p.first?.message.contains("name \"Web_1\" is not a DNS-1123 label") == true)
        let q = problems(clusterHeader.replacingOccurrences(of: "name: lab", with: "name: Lab"))
        #expect(q.first?.message.contains("cluster name \"Lab\" is not a DNS-1123 label") == true)
        let r = problems(clusterHeader + pod("ok", ns: "Bad.NS"))
        #expect(r.first?.message.contains("namespace \"Bad.NS\"") == true)
    }

    @Test func nodeNameMustExist() {
        let p = problems(clusterHeader + pod("a", node: "lab-worker9"))
        #expect(p.first?.message.contains("nodeName \"lab-worker9\" is not a node of this cluster") == true)
        #expect(p.first?.location?.field == "spec.nodeName")
    }

    @Test func zeroNodes() {
        let p = problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: []\n")
        #expect(p.first?.message.contains("zero nodes") == true)
    }

    @Test func clusterNameTooLongForInterfaceNames() {
        let p = problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: workshop-lab1\n")
        #expect(p.first?.message.contains("at most 11") == true)
        #expect(p.first?.message.contains("15 bytes") == true)
        #expect(p.first?.location?.line == 3)
    }

    @Test func everyProblemIsReportedAtOnce() {
        let p = problems(clusterHeader.replacingOccurrences(of: "- role: worker\n- role: worker", with: "- role: wrker\n- role: worker\n  bogus: 1") + pod("a", node: "nope"))
        #expect(p.count == 3)
    }

    @Test func otherBadValues() {
        #expect(problems(clusterHeader + "---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\nnetwork: {backend: geneve}\n")
            .first?.message.contains("backend \"geneve\" is not valid (use vxlan or host-gw)") == true)
        #expect(problems(clusterHeader + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  restartPolicy: Sometimes\n  containers: [{name: c, image: x}]\n")
            .first?.message.contains("restartPolicy \"Sometimes\"") == true)
        #expect(problems(clusterHeader + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: []\n")
            .first?.message.contains("at least one container") == true)
        #expect(problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking: {kubeProxyMode: ipvs}\n")
            .first?.message.contains("IPVS") == true)
        #expect(problems("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: worker}]\n")
            .first?.message.contains("control-plane") == true)
    }
}

@Suite("Addressing")
struct AddressingTests {
    @Test func parseAndPrint() throws {
        #expect(IPv4Address("10.244.1.2")?.description == "10.244.1.2")
        #expect(IPv4Address("10.244.1") == nil)
        #expect(IPv4Address("10.244.1.256") == nil)
        #expect(IPv4Address("010.1.1.1") == nil)
        let c = try IPv4CIDR.parse("10.244.0.0/16")
        #expect(c.subnet(2, prefix: 24)?.description == "10.244.2.0/24")
        #expect(c.subnet(256, prefix: 24) == nil)
        #expect(c.subnetCount(prefix: 24) == 256)
        #expect(c.contains(IPv4Address("10.244.255.1")!))
        #expect(!c.contains(IPv4Address("10.245.0.1")!))
        #expect(c.overlaps(try IPv4CIDR.parse("10.0.0.0/8")))
        #expect(!c.overlaps(try IPv4CIDR.parse("10.96.0.0/12")))
        #expect(try IPv4CIDR.parse("10.244.3.0/24").broadcast.description == "10.244.3.255")
        #expect(throws: IPv4CIDR.ParseError.self) { try IPv4CIDR.parse("10.244.0.0") }
    }
}
