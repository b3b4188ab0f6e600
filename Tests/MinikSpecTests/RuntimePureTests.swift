import Foundation
@testable import MinikRuntime
import MinikSpec
import Testing

@Suite("IPAM (host-local)")
struct IPAMTests {
    @Test func allocatesFromDotTwoAndSkipsGatewayAndBroadcast() throws {
        var pool = IPAMPool(range: try IPv4CIDR.parse("10.244.1.0/24"))
        #expect(pool.gateway.description == "10.244.1.1")
        #expect(pool.capacity == 253)
        #expect(try pool.allocate(owner: "default/a").description == "10.244.1.2")
        #expect(try pool.allocate(owner: "default/b").description == "10.244.1.3")
        // An owner keeps its address.
        #expect(try pool.allocate(owner: "default/a").description == "10.244.1.2")
    }

    @Test func roundRobinAfterReleaseAndExhaustion() throws {
        var pool = IPAMPool(range: try IPv4CIDR.parse("10.244.1.0/24"))
        for i in 0..<253 { _ = try pool.allocate(owner: "p\(i)") }
        #expect(throws: IPAMError.self) { try pool.allocate(owner: "one-too-many") }
        pool.release(owner: "p0") // 10.244.1.2
        pool.release(owner: "p10") // 10.244.1.12
        // Continues after the last one handed out (.254), wrapping to the first free.
        #expect(try pool.allocate(owner: "x").description == "10.244.1.2")
        #expect(try pool.allocate(owner: "y").description == "10.244.1.12")
    }

    @Test func allocationsSurviveARestart() throws {
        let dir = NSTemporaryDirectory() + "minik-ipam-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let range = try IPv4CIDR.parse("10.244.2.0/24")
        do {
            let ipam = try HostLocalIPAM(directory: dir, range: range)
            #expect(try ipam.allocate(owner: "default/a").description == "10.244.2.2")
            #expect(try ipam.allocate(owner: "default/b").description == "10.244.2.3")
            ipam.release(owner: "default/a")
            ipam.flush()
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["10.244.2.3", "last_reserved_ip.0"])
        let again = try HostLocalIPAM(directory: dir, range: range)
        #expect(again.allocations == ["default/b": IPv4Address("10.244.2.3")!])
        // Round robin continues after .3, so the freed .2 is not reused at once.
        #expect(try again.allocate(owner: "default/c").description == "10.244.2.4")
    }
}

@Suite("Overlay plan")
struct OverlayPlanTests {
    func spec(_ backend: String) throws -> ClusterSpec {
        try SpecLoader.parse("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        name: lab
        nodes: [{role: control-plane}, {role: worker}, {role: worker}]
        ---
        apiVersion: minik.dev/v1alpha1
        kind: MinikConfig
        network: {backend: \(backend)}
        """, file: "c.yaml")
    }

    @Test func vxlanProgramsNeighbourThenFDBThenRoutePerRemoteNode() throws {
        let s = try spec("vxlan")
        let plan = OverlayPlan.make(for: s.nodes[1], in: s)
        #expect(plan.vtepAddress.description == "10.244.1.0")
        #expect(plan.vtepMAC == [0x02, 0x6d, 0x6b, 0x00, 0x01, 0x01])
        let cp = s.nodes[0], w2 = s.nodes[2]
        #expect(plan.steps == [
            .neighbour(address: IPv4Address("10.244.0.0")!, mac: Naming.vtepMAC(nodeIndex: 0)),
            .fdb(mac: Naming.vtepMAC(nodeIndex: 0), destination: cp.internalIP),
            .route(destination: cp.podCIDR, via: IPv4Address("10.244.0.0")!, device: .vxlan, onlink: true),
            .neighbour(address: IPv4Address("10.244.2.0")!, mac: Naming.vtepMAC(nodeIndex: 2)),
            .fdb(mac: Naming.vtepMAC(nodeIndex: 2), destination: w2.internalIP),
            .route(destination: w2.podCIDR, via: IPv4Address("10.244.2.0")!, device: .vxlan, onlink: true),
        ])
    }

    @Test func hostGWRoutesViaTheRemoteUnderlayAddress() throws {
        let s = try spec("host-gw")
        let plan = OverlayPlan.make(for: s.nodes[0], in: s)
        #expect(plan.steps == [
            .route(destination: s.nodes[1].podCIDR, via: IPv4Address("172.18.0.3")!, device: .uplink, onlink: false),
            .route(destination: s.nodes[2].podCIDR, via: IPv4Address("172.18.0.4")!, device: .uplink, onlink: false),
        ])
        #expect(s.network.podMTU == 1500)
    }
}

@Suite("Naming and probes")
struct NamingTests {
    @Test func namesFitTheKernelAndStayApart() {
        #expect(Naming.underlayBridge("abcdefghijk").utf8.count <= 15)
        #expect(Naming.underlayPort("abcdefghijk", nodeIndex: 255).utf8.count <= 15)
        let v = Naming.hostVeth(namespace: "default", pod: "web-0")
        #expect(v.hasPrefix("veth") && v.count == 12)
        #expect(v == Naming.hostVeth(namespace: "default", pod: "web-0"))
        #expect(v != Naming.hostVeth(namespace: "default", pod: "web-1"))
        #expect(v != Naming.hostVeth(namespace: "default", pod: "web-0", salt: 1))
        #expect(Naming.podNetns("lab", namespace: "default", pod: "web-0") == "minik-lab.default.web-0")
        #expect(Naming.nodeNetns("lab", node: "lab-worker").hasPrefix(Naming.netnsPrefix("lab")))
        // Another cluster's prefix never matches: "lab" vs "lab2".
        #expect(!Naming.nodeNetns("lab2", node: "lab2-worker").hasPrefix(Naming.netnsPrefix("lab")))
        #expect(Naming.bridgeMAC(gateway: IPv4Address("10.244.1.1")!) == [0x0a, 0x58, 10, 244, 1, 1])
    }

    @Test func icmpChecksumAndReplyParsing() {
        // RFC 1071 example words.
        #expect(Reachability.checksum([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]) == ~UInt16(0xddf2))
        var reply = [UInt8](repeating: 0, count: 28)
        reply[0] = 0x45
        reply[12...15] = [10, 244, 2, 3]
        reply[20] = 0 // echo reply
        reply[24] = 0x12; reply[25] = 0x34
        #expect(Reachability.parseReply(reply, count: 28, ident: 0x1234)?.description == "10.244.2.3")
        #expect(Reachability.parseReply(reply, count: 28, ident: 0x9999) == nil)
        reply[20] = 8 // a request, not a reply
        #expect(Reachability.parseReply(reply, count: 28, ident: 0x1234) == nil)
    }
}

@Suite("Containers, pure parts")
struct ContainerPureTests {
    @Test func backoffDoublesCapsAndResets() {
        var current: Double?
        var delays: [Double] = []
        for _ in 0..<8 {
            let (d, n) = Backoff.step(current: current, ranFor: 1, initial: 1)
            delays.append(d)
            current = n
        }
        #expect(delays == [1, 2, 4, 8, 16, 30, 30, 30])
        #expect(Backoff.step(current: 30, ranFor: 61, initial: 1).delay == 1)
        #expect(Backoff.step(current: 8, ranFor: 5, initial: 0).delay == 0)
    }

    @Test func imageReferencesResolveToLocalNames() {
        #expect(ImageStore.localName("busybox") == "busybox")
        #expect(ImageStore.localName("busybox:1.36") == "busybox")
        #expect(ImageStore.localName("docker.io/library/busybox") == "busybox")
        #expect(ImageStore.localName("registry.k8s.io/e2e-test-images/agnhost:2.39@sha256:abc") == "agnhost")
        #expect(ImageStore.localName("localhost:5000/netexec") == "netexec")
    }

    /// The Kubernetes e2e image, by every name its manifests have used, is our agnhost.
    @Test(arguments: [
        "registry.k8s.io/e2e-test-images/agnhost:2.53",
        "registry.k8s.io/e2e-test-images/agnhost:2.52",
        "registry.k8s.io/e2e-test-images/agnhost:2.47",
        "k8s.gcr.io/e2e-test-images/agnhost:2.39",
        "gcr.io/kubernetes-e2e-test-images/agnhost:2.8",
        "registry.k8s.io/e2e-test-images/agnhost@sha256:0123456789abcdef",
        "agnhost:2.53",
        "agnhost",
    ])
    func agnhostReferencesResolveToAgnhost(reference: String) throws {
        #expect(ImageStore.localName(reference) == "agnhost")
        let dir = NSTemporaryDirectory() + "minik-images-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/agnhost/rootfs", withIntermediateDirectories: true)
        try #"{"entrypoint": ["/agnhost"], "command": ["pause"], "env": []}"#.write(toFile: dir + "/agnhost/image.json", atomically: true, encoding: .utf8)
        let image = try #require(ImageStore(directory: dir).image(reference))
        #expect(image.name == "agnhost")
        // The e2e manifests' forms: args after agnhost's entrypoint, or /agnhost as the command.
        #expect(image.config.argv(command: [], args: ["netexec", "--http-port=8080", "--udp-port=8081"])
            == ["/agnhost", "netexec", "--http-port=8080", "--udp-port=8081"])
        #expect(image.config.argv(command: ["/agnhost", "serve-hostname"], args: []) == ["/agnhost", "serve-hostname"])
        #expect(image.config.argv(command: [], args: []) == ["/agnhost", "pause"])
    }

    @Test func argvFollowsKubernetesCommandAndArgs() {
        let image = ImageConfig(entrypoint: ["/netexec"], command: ["--http-port=8080"], workingDir: nil, env: [])
        #expect(image.argv(command: [], args: []) == ["/netexec", "--http-port=8080"])
        #expect(image.argv(command: [], args: ["--http-port=9000"]) == ["/netexec", "--http-port=9000"])
        #expect(image.argv(command: ["sh", "-c"], args: ["echo hi"]) == ["sh", "-c", "echo hi"])
        let busybox = ImageConfig(entrypoint: nil, command: ["sh"], workingDir: nil, env: [])
        #expect(busybox.argv(command: [], args: ["echo", "hi"]) == ["echo", "hi"])
    }

    @Test func imageProblemsNameThePlace() throws {
        let dir = NSTemporaryDirectory() + "minik-images-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/bare/rootfs", withIntermediateDirectories: true)
        try #"{"command": [], "env": []}"#.write(toFile: dir + "/bare/image.json", atomically: true, encoding: .utf8)
        let spec = try SpecLoader.parse("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: a}
        spec:
          containers:
          - {name: one, image: bare}
          - {name: two, image: nginx:1.25}
        """, file: "c.yaml")
        // The user's containers (the cluster DNS pods' image is minik's own).
        let problems = ImageStore(directory: dir).problems(in: spec).filter { $0.location?.file == "c.yaml" }
        #expect(problems.count == 2)
        #expect(problems[0].description.hasPrefix("c.yaml:9:"))
        #expect(problems[0].message.contains("has no command and image bare has no default command"))
        #expect(problems[1].message.contains("unknown image \"nginx:1.25\" (available: bare)"))
    }

    @Test func capabilitiesAndQuantities() {
        #expect(Capabilities.normalize("net_admin") == "NET_ADMIN")
        #expect(Capabilities.normalize("CAP_SYS_ADMIN") == "SYS_ADMIN")
        #expect(Capabilities.normalize("NET_ADMN") == nil)
        let m = Capabilities.mask(add: ["NET_ADMIN"], drop: ["NET_RAW"])
        #expect(m & (1 << 12) != 0)   // NET_ADMIN added
        #expect(m & (1 << 13) == 0)   // NET_RAW dropped
        #expect(m & (1 << 21) == 0)   // SYS_ADMIN never by default
        #expect(m & (1 << 0) != 0)    // CHOWN by default
        #expect(Capabilities.mask(add: [], drop: ["ALL"]) == 0)
        #expect(Quantity.bytes("64Mi") == 67_108_864)
        #expect(Quantity.bytes("1G") == 1_000_000_000)
        #expect(Quantity.bytes("12x") == nil)
        #expect(Quantity.milliCPU("500m") == 500)
        #expect(Quantity.milliCPU("1.5") == 1500)
        #expect(Quantity.milliCPU("lots") == nil)
    }
}
