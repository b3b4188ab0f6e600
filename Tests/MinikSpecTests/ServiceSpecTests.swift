// Services and probes in the spec (SpecServices.swift, Model.swift): decoding, defaults,
// ClusterIP and node port allocation, every rejected input with its place, apply, and
// the container probes. Shared helpers are in SpecTests.swift.
import Foundation
import MinikSpec
import Testing

// MARK: - helpers (indent, service, line(of:), expectRejected: SpecTests.swift)

/// A pod with labels and ports on its one container "server".
private func labelledPod(_ name: String, ns: String = "default", labels: String = "{app: web}",
                         ports: String = "[{name: http, containerPort: 8080}]") -> String {
    """
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: \(name), namespace: \(ns), labels: \(labels)}
    spec:
      containers:
      - name: server
        image: busybox
        ports: \(ports)

    """
}

/// A pod "p" whose containers are `containers` (a YAML list, written without indentation).
private func probePod(_ containers: String) -> String {
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n\(indent(containers, 2))\n"
}

private func only(_ spec: ClusterSpec, _ name: String, ns: String = "default",
                  sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> ServiceSpec {
    try #require(spec.services.first { $0.name == name && $0.namespace == ns }, sourceLocation: sourceLocation)
}

private let serviceSubnet = try! IPv4CIDR.parse("10.96.0.0/12")

private func isReserved(_ ip: IPv4Address, in subnet: IPv4CIDR) -> Bool {
    ip == subnet.network || ip == subnet.broadcast || ip == subnet.address(1) || ip == subnet.address(10)
}

// MARK: - valid services

@Suite("Services: valid specs")
struct ServiceSpecValidTests {
    @Test func nodePortServiceWithRequestedNodePortAndNamedTargetPort() throws {
        let text = clusterHeader + labelledPod("web-a") + service("web", """
        type: NodePort
        selector: {app: web}
        ports:
        - name: http
          port: 80
          targetPort: http
          nodePort: 30080
        """)
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        #expect(spec.services.map(\.key) == ["default/web", "kube-system/kube-dns"])
        let s = try only(spec, "web")
        #expect(s.key == "default/web")
        #expect(s.type == .nodePort)
        #expect(s.hasNodePorts)
        #expect(s.selector == ["app": "web"])
        #expect(s.ports == [ServicePort(name: "http", proto: "TCP", port: 80, targetPort: .name("http"), nodePort: 30080)])
        let ip = try #require(s.clusterIP)
        #expect(serviceSubnet.contains(ip))
        #expect(!isReserved(ip, in: serviceSubnet))
        #expect(s.isProxied)
        #expect(s.source.file == "c.yaml")
        #expect(s.source.line == line(of: "kind: Service", in: text) - 1) // the document starts at apiVersion
        // The selector picks the pod, whose container names the port.
        let pod = try #require(spec.pods.first)
        #expect(spec.pods(selectedBy: s).map(\.key) == ["default/web-a"])
        #expect(s.ports[0].targetPort.resolve(in: pod) == 8080)
        #expect(s.ports[0].targetPort.resolve(in: pod, proto: "UDP") == nil)
        #expect(PortRef.name("nope").resolve(in: pod) == nil)
        #expect(PortRef.number(9000).resolve(in: pod) == 9000)
        #expect(spec.warnings.isEmpty, "\(spec.warnings)")
    }

    @Test func defaults() throws {
        let spec = try SpecLoader.parse(clusterHeader + labelledPod("web-a") + service("web", """
        selector: {app: web}
        ports: [{port: 80}]
        """), file: "c.yaml")
        let s = try only(spec, "web")
        #expect(s.type == .clusterIP)
        #expect(!s.hasNodePorts)
        #expect(s.ports == [ServicePort(name: "", proto: "TCP", port: 80, targetPort: .number(80), nodePort: nil)])
        #expect(s.clientIPAffinity == false)
        #expect(s.affinityTimeoutSeconds == 10800)
        #expect(ServiceSpec.defaultAffinityTimeout == 10800)
        #expect(s.publishNotReadyAddresses == false)
        #expect(s.externalIPs.isEmpty)
        #expect(s.externalName == nil)
        #expect(s.headless == false)
        #expect(s.clusterIP != nil)
        #expect(s.isProxied)
        #expect(s.labels.isEmpty)
    }

    @Test func allocatedClusterIPIsAHashOfNamespaceAndName() throws {
        let a = service("alpha", "selector: {app: a}\nports: [{port: 80}]")
        let b = service("beta", "selector: {app: b}\nports: [{port: 80}]")
        let c = service("gamma", ns: "shop", "selector: {app: c}\nports: [{port: 80}]")
        let alone = try SpecLoader.parse(clusterHeader + a, file: "c.yaml")
        let again = try SpecLoader.parse(clusterHeader + a, file: "other.yaml")
        let after = try SpecLoader.parse(clusterHeader + b + c + a, file: "c.yaml")
        let before = try SpecLoader.parse(clusterHeader + a + c + b, file: "c.yaml")
        let ip = try #require(try only(alone, "alpha").clusterIP)
        #expect(serviceSubnet.contains(ip))
        #expect(!isReserved(ip, in: serviceSubnet))
        #expect(try only(again, "alpha").clusterIP == ip)
        #expect(try only(after, "alpha").clusterIP == ip)
        #expect(try only(before, "alpha").clusterIP == ip)
        #expect(try only(after, "gamma", ns: "shop").clusterIP == only(before, "gamma", ns: "shop").clusterIP)
        let ips = Set(after.services.filter { $0.namespace != "kube-system" }.compactMap(\.clusterIP))
        #expect(ips.count == 3)
        // The namespace is part of the hash.
        let elsewhere = try SpecLoader.parse(clusterHeader + service("alpha", ns: "shop", "selector: {app: a}\nports: [{port: 80}]"), file: "c.yaml")
        #expect(try only(elsewhere, "alpha", ns: "shop").clusterIP != ip)
        #expect(elsewhere.namespaces.contains("shop"))
    }

    @Test func manyServicesGetDistinctUnreservedAddresses() throws {
        let text = clusterHeader + (0..<300).map { service("s\($0)", "ports: [{port: 80}]") }.joined()
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let ips = spec.services.filter { $0.namespace == "default" }.compactMap(\.clusterIP)
        #expect(ips.count == 300)
        #expect(Set(ips).count == 300)
        #expect(ips.allSatisfy { serviceSubnet.contains($0) && !isReserved($0, in: serviceSubnet) })
    }

    @Test func aSmallServiceSubnetIsFilledWithoutItsReservedAddresses() throws {
        let header = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking: {serviceSubnet: 10.96.0.0/28}\n"
        let twelve = (0..<12).map { service("s\($0)", "ports: [{port: 80}]") }.joined()
        let spec = try SpecLoader.parse(header + twelve, file: "c.yaml")
        // .0 network, .1 kubernetes API, .10 DNS (kube-system/kube-dns), .15 broadcast: the
        // other 12 are used.
        let expected = Set([2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14].map { IPv4Address(10, 96, 0, UInt8($0)) })
        #expect(Set(spec.services.filter { $0.namespace == "default" }.compactMap(\.clusterIP)) == expected)
        #expect(spec.services.count == 13)
        #expect(try only(spec, "kube-dns", ns: "kube-system").clusterIP == IPv4Address(10, 96, 0, 10))
        // A thirteenth has nowhere to go.
        let text = header + twelve + service("s12", "ports: [{port: 80}]")
        expectRejected(text, field: "metadata", line: line(of: "name: s12", in: text),
                       saying: "serviceSubnet 10.96.0.0/28 has no free address left for service default/s12")
        #expect(SpecLoader.dnsServiceIP(try IPv4CIDR.parse("10.96.0.0/12")).description == "10.96.0.10")
    }

    @Test func nodePortsAreAllocatedInRangeDistinctAndStable() throws {
        let three = service("multi", """
        type: NodePort
        ports:
        - {name: a, port: 80}
        - {name: b, port: 81}
        - {name: c, port: 82, protocol: UDP}
        """)
        let many = (0..<60).map { service("np\($0)", "type: NodePort\nports: [{port: 80}]") }.joined()
        let spec = try SpecLoader.parse(clusterHeader + three + many, file: "c.yaml")
        let all = spec.services.filter { $0.namespace == "default" }.flatMap { $0.ports.map(\.nodePort) }
        #expect(all.count == 63)
        let ports = all.compactMap { $0 }
        #expect(ports.count == 63)
        #expect(ports.allSatisfy { (30000...32767).contains($0) })
        #expect(Set(ports).count == 63)
        #expect(ServiceSpec.nodePortRange == 30000...32767)
        // Same service, same ports, whatever else is in the file.
        let alone = try SpecLoader.parse(clusterHeader + three, file: "c.yaml")
        #expect(try only(alone, "multi").ports == only(spec, "multi").ports)
    }

    @Test func aRequestedNodePortIsNeverHandedToAnother() throws {
        // Learn where "b" would land, then have "a" ask for exactly that.
        let b = service("b", "type: NodePort\nports: [{port: 80}]")
        let alone = try SpecLoader.parse(clusterHeader + b, file: "c.yaml")
        let np = try #require(try only(alone, "b").ports[0].nodePort)
        let a = service("a", "type: NodePort\nports: [{port: 80, nodePort: \(np)}]")
        let both = try SpecLoader.parse(clusterHeader + b + a, file: "c.yaml")
        #expect(try only(both, "a").ports[0].nodePort == np)
        let moved = try #require(try only(both, "b").ports[0].nodePort)
        #expect(moved != np)
        #expect(ServiceSpec.nodePortRange.contains(moved))
        // The same number for UDP is another port.
        let udp = service("u", "type: NodePort\nports: [{port: 53, protocol: UDP, nodePort: \(np)}]")
        let mixed = try SpecLoader.parse(clusterHeader + a + udp, file: "c.yaml")
        #expect(try only(mixed, "u").ports[0].nodePort == np)
    }

    @Test func requestedClusterIPIsHonouredAndNeverAllocatedToAnother() throws {
        let spec = try SpecLoader.parse(clusterHeader + service("web", "clusterIP: 10.100.1.1\nports: [{port: 80}]")
                                        + service("api", "clusterIPs: [10.100.1.2]\nports: [{port: 80}]"), file: "c.yaml")
        #expect(try only(spec, "web").clusterIP == IPv4Address("10.100.1.1"))
        #expect(try only(spec, "api").clusterIP == IPv4Address("10.100.1.2"))
        // "b" would be allocated X; "a", written after it, asks for X and gets it.
        let b = service("b", "ports: [{port: 80}]")
        let x = try #require(try only(SpecLoader.parse(clusterHeader + b, file: "c.yaml"), "b").clusterIP)
        let both = try SpecLoader.parse(clusterHeader + b + service("a", "clusterIP: \(x)\nports: [{port: 80}]"), file: "c.yaml")
        #expect(try only(both, "a").clusterIP == x)
        let bIP = try #require(try only(both, "b").clusterIP)
        #expect(bIP != x)
        #expect(serviceSubnet.contains(bIP))
    }

    @Test func headlessServiceHasNoClusterIP() throws {
        let spec = try SpecLoader.parse(clusterHeader + service("db", "clusterIP: None\nselector: {app: db}\nports: [{port: 5432}]")
                                        + service("bare", "clusterIP: None\nselector: {app: db}"), file: "c.yaml")
        for name in ["db", "bare"] {
            let s = try only(spec, name)
            #expect(s.headless)
            #expect(s.clusterIP == nil)
            #expect(!s.isProxied)
        }
        #expect(try only(spec, "db").ports.map(\.port) == [5432])
        #expect(try only(spec, "bare").ports.isEmpty)
    }

    @Test func externalName() throws {
        let spec = try SpecLoader.parse(clusterHeader + service("ext", "type: ExternalName\nexternalName: db.example.com"), file: "c.yaml")
        let s = try only(spec, "ext")
        #expect(s.type == .externalName)
        #expect(s.externalName == "db.example.com")
        #expect(s.clusterIP == nil)
        #expect(!s.headless)
        #expect(s.ports.isEmpty)
        #expect(!s.isProxied)
    }

    @Test func severalPorts() throws {
        let spec = try SpecLoader.parse(clusterHeader + service("web", """
        selector: {app: web}
        ports:
        - {name: http, port: 80, targetPort: 8080}
        - {name: dns, port: 53, protocol: UDP, targetPort: dns}
        - {name: dns-tcp, port: 53, protocol: TCP, targetPort: dns}
        - {name: metrics, port: 9090}
        """), file: "c.yaml")
        #expect(try only(spec, "web").ports == [
            ServicePort(name: "http", proto: "TCP", port: 80, targetPort: .number(8080)),
            ServicePort(name: "dns", proto: "UDP", port: 53, targetPort: .name("dns")),
            ServicePort(name: "dns-tcp", proto: "TCP", port: 53, targetPort: .name("dns")),
            ServicePort(name: "metrics", proto: "TCP", port: 9090, targetPort: .number(9090)),
        ])
    }

    @Test func clientIPAffinity() throws {
        let spec = try SpecLoader.parse(clusterHeader + service("sticky", """
        sessionAffinity: ClientIP
        sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
        ports: [{port: 80}]
        """) + service("default-timeout", "sessionAffinity: ClientIP\nports: [{port: 80}]")
            + service("none", "sessionAffinity: None\nports: [{port: 80}]"), file: "c.yaml")
        #expect(try only(spec, "sticky").clientIPAffinity)
        #expect(try only(spec, "sticky").affinityTimeoutSeconds == 600)
        #expect(try only(spec, "default-timeout").clientIPAffinity)
        #expect(try only(spec, "default-timeout").affinityTimeoutSeconds == 10800)
        #expect(try only(spec, "none").clientIPAffinity == false)
    }

    @Test func externalIPsAndPublishNotReady() throws {
        let spec = try SpecLoader.parse(clusterHeader + service("web", """
        externalIPs: [192.0.2.10, 198.51.100.7]
        publishNotReadyAddresses: true
        ports: [{port: 80}]
        """), file: "c.yaml")
        let s = try only(spec, "web")
        #expect(s.externalIPs == [IPv4Address(192, 0, 2, 10), IPv4Address(198, 51, 100, 7)])
        #expect(s.publishNotReadyAddresses)
    }

    @Test func loadBalancerWorksAsNodePortWithAWarning() throws {
        let text = clusterHeader + service("lb", "type: LoadBalancer\nports: [{port: 80}]")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let s = try only(spec, "lb")
        #expect(s.type == .loadBalancer)
        #expect(s.hasNodePorts)
        #expect(s.ports[0].nodePort.map { ServiceSpec.nodePortRange.contains($0) } == true)
        #expect(spec.warnings.contains { $0.hasPrefix("c.yaml:\(line(of: "type: LoadBalancer", in: text)):") && $0.contains("no load balancer") })
    }

    @Test func warningWhenTheSelectorMatchesNoPod() throws {
        let text = clusterHeader + labelledPod("web-a") + service("lost", "selector: {app: nope}\nports: [{port: 80}]")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        #expect(spec.warnings.count == 1, "\(spec.warnings)")
        let w = try #require(spec.warnings.first)
        #expect(w.hasPrefix("c.yaml:\(line(of: "metadata:", after: "kind: Service", in: text)):"), "\(w)")
        #expect(w.contains("selector app=nope matches no pod in namespace default yet"), "\(w)")
        #expect(w.contains("app=web"), "the labels the namespace's pods do have: \(w)")
        // A selector that matches, or none at all, warns of nothing.
        let fine = try SpecLoader.parse(clusterHeader + labelledPod("web-a") + service("web", "selector: {app: web}\nports: [{port: 80}]")
                                        + service("manual", "ports: [{port: 80}]"), file: "c.yaml")
        #expect(fine.warnings.isEmpty, "\(fine.warnings)")
        // A pod of another namespace does not count.
        let other = try SpecLoader.parse(clusterHeader + labelledPod("web-a", ns: "shop") + service("web", "selector: {app: web}\nports: [{port: 80}]"), file: "c.yaml")
        #expect(other.warnings.count == 1)
    }
}

// MARK: - bad input

@Suite("Services: bad input names its place")
struct ServiceSpecRejectTests {
    @Test func clusterIPOutsideTheServiceSubnet() {
        let text = clusterHeader + service("web", "clusterIP: 10.0.0.5\nports: [{port: 80}]")
        expectRejected(text, field: "spec.clusterIP", line: line(of: "clusterIP:", in: text),
                       saying: "clusterIP 10.0.0.5 is outside the serviceSubnet 10.96.0.0/12")
        let bad = clusterHeader + service("web", "clusterIP: 10.96.0.300\nports: [{port: 80}]")
        expectRejected(bad, field: "spec.clusterIP", line: line(of: "clusterIP:", in: bad), saying: "is not an IPv4 address")
    }

    @Test func clusterIPTakenByAnotherService() {
        let text = clusterHeader + service("a", "clusterIP: 10.96.5.5\nports: [{port: 80}]")
            + service("b", "clusterIP: 10.96.5.5\nports: [{port: 80}]")
        expectRejected(text, field: "spec.clusterIP", line: line(of: "clusterIP:", after: "name: b", in: text),
                       saying: "clusterIP 10.96.5.5 is already taken by service default/a")
    }

    @Test(arguments: [
        ("10.96.0.10", "reserved for the cluster DNS service"),
        ("10.96.0.1", "reserved for the kubernetes API service"),
        ("10.96.0.0", "the subnet's network or broadcast address"),
        ("10.111.255.255", "the subnet's network or broadcast address"),
    ])
    func reservedClusterIP(ip: String, why: String) {
        let text = clusterHeader + service("web", "clusterIP: \(ip)\nports: [{port: 80}]")
        expectRejected(text, field: "spec.clusterIP", line: line(of: "clusterIP:", in: text),
                       saying: "clusterIP \(ip) cannot be used: \(why)")
    }

    @Test(arguments: [29999, 40000])
    func nodePortOutOfRange(np: Int) {
        let text = clusterHeader + service("web", "type: NodePort\nports:\n- port: 80\n  nodePort: \(np)")
        expectRejected(text, field: "spec.ports[0].nodePort", line: line(of: "nodePort: \(np)", in: text),
                       saying: "nodePort \(np) is out of range (30000-32767)")
    }

    @Test func nodePortTaken() {
        let text = clusterHeader + service("a", "type: NodePort\nports:\n- port: 80\n  nodePort: 30080")
            + service("b", "type: NodePort\nports:\n- {name: x, port: 81}\n- name: y\n  port: 80\n  nodePort: 30080")
        expectRejected(text, field: "spec.ports[1].nodePort", line: line(of: "nodePort: 30080", after: "name: b", in: text),
                       saying: "nodePort 30080/TCP is already taken by service default/a")
    }

    @Test func theSameNodePortTwiceInOneService() {
        // Kubernetes refuses this (spec.ports[1].nodePort: Duplicate value); the proxy would
        // send the node port to the first port only.
        let text = clusterHeader + service("web", "type: NodePort\nports:\n- name: a\n  port: 80\n  nodePort: 30080\n- name: b\n  port: 81\n  nodePort: 30080")
        expectRejected(text, field: "spec.ports[1].nodePort", line: line(of: "nodePort: 30080", after: "name: b", in: text),
                       saying: "nodePort 30080/TCP")
    }

    @Test func clusterIPsIsSingleStack() {
        let two = clusterHeader + service("web", "clusterIPs: [10.96.0.20, 10.96.0.21]\nports: [{port: 80}]")
        expectRejected(two, field: "spec.clusterIPs", line: line(of: "clusterIPs:", in: two),
                       saying: "clusterIPs has 2 addresses; minik is IPv4 single-stack (one)")
        let differ = clusterHeader + service("web", "clusterIP: 10.96.0.20\nclusterIPs: [10.96.0.21]\nports: [{port: 80}]")
        expectRejected(differ, field: "spec.clusterIPs", line: line(of: "clusterIPs:", in: differ),
                       saying: "clusterIPs[0] 10.96.0.21 differs from clusterIP 10.96.0.20")
    }

    @Test func nodePortOnAClusterIPService() {
        let text = clusterHeader + service("web", "ports:\n- port: 80\n  nodePort: 30080")
        expectRejected(text, field: "spec.ports[0].nodePort", line: line(of: "nodePort:", in: text),
                       saying: "nodePort is only for type NodePort or LoadBalancer (this service is ClusterIP)")
    }

    @Test func duplicatePortNames() {
        let text = clusterHeader + service("web", "ports:\n- name: http\n  port: 80\n- name: http\n  port: 81")
        let first = line(of: "name: http", in: text)
        expectRejected(text, field: "spec.ports[1].name", line: line(of: "name: http", after: "port: 80", in: text),
                       saying: "port name \"http\" is used twice (first at line \(first))")
    }

    @Test func missingNameWithTwoPorts() {
        let text = clusterHeader + service("web", "ports:\n- name: http\n  port: 80\n- port: 81")
        expectRejected(text, field: "spec.ports[1]", line: line(of: "- port: 81", in: text),
                       saying: "a service with several ports needs a name on each of them")
    }

    @Test func samePortAndProtocolTwice() {
        let text = clusterHeader + service("web", "ports:\n- name: a\n  port: 80\n- name: b\n  port: 80")
        expectRejected(text, field: "spec.ports[1].port", line: line(of: "port: 80", after: "name: b", in: text),
                       saying: "port 80/TCP is listed twice (first at line \(line(of: "port: 80", in: text)))")
    }

    @Test func protocolSCTP() {
        let text = clusterHeader + service("web", "ports:\n- port: 80\n  protocol: SCTP")
        expectRejected(text, field: "spec.ports[0].protocol", line: line(of: "protocol: SCTP", in: text),
                       saying: "protocol \"SCTP\" is not supported (use TCP or UDP)")
    }

    @Test func selectorNotAMapping() {
        let text = clusterHeader + service("web", "selector: [app, web]\nports: [{port: 80}]")
        expectRejected(text, field: "spec.selector", line: line(of: "selector:", in: text), saying: "must be a mapping of strings")
        // A Deployment's selector written on a Service.
        let nested = clusterHeader + service("web", "selector:\n  matchLabels: {app: web}\nports: [{port: 80}]")
        expectRejected(nested, field: "spec.selector", line: line(of: "matchLabels:", in: nested), saying: "must be a mapping of strings")
    }

    @Test func targetPortNotANameOrNumber() {
        let text = clusterHeader + service("web", "ports:\n- port: 80\n  targetPort: Bad_Name")
        expectRejected(text, field: "spec.ports[0].targetPort", line: line(of: "targetPort:", in: text),
                       saying: "targetPort \"Bad_Name\" is neither a port number nor a port name")
        let zero = clusterHeader + service("web", "ports:\n- port: 80\n  targetPort: 0")
        expectRejected(zero, field: "spec.ports[0].targetPort", line: line(of: "targetPort:", in: zero),
                       saying: "targetPort 0 is out of range (1-65535)")
    }

    @Test func portOutOfRangeAndMissing() {
        let text = clusterHeader + service("web", "ports:\n- port: 70000")
        expectRejected(text, field: "spec.ports[0].port", line: line(of: "port: 70000", in: text), saying: "port 70000 is out of range (1-65535)")
        let missing = clusterHeader + service("web", "ports:\n- targetPort: 80")
        expectRejected(missing, field: "spec.ports[0]", line: line(of: "targetPort: 80", in: missing), saying: "port is required")
        let none = clusterHeader + service("web", "selector: {app: web}")
        expectRejected(none, field: "spec", line: line(of: "selector:", in: none), saying: "spec.ports is required")
    }

    @Test func unknownType() {
        let text = clusterHeader + service("web", "type: Foo\nports: [{port: 80}]")
        expectRejected(text, field: "spec.type", line: line(of: "type: Foo", in: text),
                       saying: "type \"Foo\" is not valid (use ClusterIP, NodePort, LoadBalancer or ExternalName)")
    }

    @Test func headlessNodePort() {
        let text = clusterHeader + service("web", "type: NodePort\nclusterIP: None\nports: [{port: 80}]")
        expectRejected(text, field: "spec.clusterIP", line: line(of: "clusterIP: None", in: text),
                       saying: "clusterIP None (a headless service) needs type ClusterIP, not NodePort")
    }

    @Test func externalNameProblems() {
        let text = clusterHeader + service("ext", "type: ExternalName\nports: [{port: 80}]")
        expectRejected(text, field: "spec", line: line(of: "type: ExternalName", in: text),
                       saying: "a Service of type ExternalName needs spec.externalName")
        let notDNS = clusterHeader + service("ext", "type: ExternalName\nexternalName: Db_Host")
        expectRejected(notDNS, field: "spec.externalName", line: line(of: "externalName:", in: notDNS), saying: "is not a DNS name")
        let wrongType = clusterHeader + service("ext", "externalName: db.example.com\nports: [{port: 80}]")
        expectRejected(wrongType, field: "spec.externalName", line: line(of: "externalName:", in: wrongType),
                       saying: "externalName is only for type ExternalName")
    }

    @Test func externalIPInsideThePodSubnet() {
        let text = clusterHeader + service("web", "externalIPs: [192.0.2.1, 10.244.1.5]\nports: [{port: 80}]")
        expectRejected(text, field: "spec.externalIPs[1]", line: line(of: "externalIPs:", in: text),
                       saying: "externalIP 10.244.1.5 is inside the podSubnet 10.244.0.0/16")
        let underlay = clusterHeader + service("web", "externalIPs:\n- 172.18.0.200\nports: [{port: 80}]")
        expectRejected(underlay, field: "spec.externalIPs[0]", line: line(of: "- 172.18.0.200", in: underlay),
                       saying: "inside the underlaySubnet 172.18.0.0/16")
    }

    @Test func trafficPolicies() throws {
        let text = clusterHeader + service("web", "type: NodePort\nexternalTrafficPolicy: Local\ninternalTrafficPolicy: Local\nports: [{port: 80}]")
            + service("ext", "externalIPs: [192.0.2.10]\nexternalTrafficPolicy: Local\nports: [{port: 80}]")
            + service("plain", "internalTrafficPolicy: Cluster\nports: [{port: 80}]")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let web = try only(spec, "web"), ext = try only(spec, "ext"), plain = try only(spec, "plain")
        #expect(web.externalLocal && web.internalLocal)
        #expect(ext.externalLocal && !ext.internalLocal)
        #expect(!plain.externalLocal && !plain.internalLocal)
        #expect(plain.internalTrafficPolicy == .cluster && plain.externalTrafficPolicy == nil)
    }

    @Test func externalTrafficPolicyLocalNeedsAnOutsideWayIn() {
        let text = clusterHeader + service("web", "externalTrafficPolicy: Local\nports: [{port: 80}]")
        expectRejected(text, field: "spec.externalTrafficPolicy", line: line(of: "externalTrafficPolicy:", in: text),
                       saying: "externalTrafficPolicy Local may only be set for externally-accessible services")
    }

    @Test func trafficPolicyValues() {
        let text = clusterHeader + service("web", "type: NodePort\ninternalTrafficPolicy: Nearby\nports: [{port: 80}]")
        expectRejected(text, field: "spec.internalTrafficPolicy", line: line(of: "internalTrafficPolicy:", in: text),
                       saying: "internalTrafficPolicy \"Nearby\" is not valid (use Cluster or Local)")
    }

    @Test func sessionAffinityConfigWithoutClientIP() {
        let text = clusterHeader + service("web", "sessionAffinityConfig:\n  clientIP:\n    timeoutSeconds: 60\nports: [{port: 80}]")
        expectRejected(text, field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", line: line(of: "timeoutSeconds:", in: text),
                       saying: "sessionAffinityConfig needs sessionAffinity: ClientIP")
    }

    @Test func affinityTimeoutZero() {
        let text = clusterHeader + service("web", "sessionAffinity: ClientIP\nsessionAffinityConfig:\n  clientIP:\n    timeoutSeconds: 0\nports: [{port: 80}]")
        expectRejected(text, field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", line: line(of: "timeoutSeconds:", in: text),
                       saying: "timeoutSeconds 0 is out of range (1-86400)")
    }

    @Test func unknownFieldWithASuggestion() {
        let text = clusterHeader + service("web", "selektor: {app: web}\nports: [{port: 80}]")
        expectRejected(text, field: "spec.selektor", line: line(of: "selektor:", in: text),
                       saying: "unknown field \"selektor\" in Service spec (did you mean \"selector\"?")
        let inPort = clusterHeader + service("web", "ports:\n- port: 80\n  targetport: 8080")
        expectRejected(inPort, field: "spec.ports[0].targetport", line: line(of: "targetport:", in: inPort),
                       saying: "did you mean \"targetPort\"?")
    }

    @Test func serviceDefinedTwice() {
        let text = clusterHeader + service("web", "ports: [{port: 80}]") + service("web", "ports: [{port: 81}]")
        expectRejected(text, field: "metadata", line: line(of: "name: web", after: "port: 80", in: text),
                       saying: "service default/web is defined twice")
    }

    @Test func everyProblemOfAServiceAtOnce() {
        let text = clusterHeader + service("web", "type: Foo\nports:\n- port: 80\n  protocol: SCTP\n  targetPort: Bad_Name")
        let p = problems(text)
        #expect(p.count == 3, "\(p)")
        let d = SpecError(p).description
        #expect(d.hasPrefix("3 problems:\n"))
        #expect(d.contains("cluster.yaml:\(line(of: "type: Foo", in: text)):"))
        #expect(d.contains("spec.ports[0].protocol"))
        #expect(d.contains("spec.ports[0].targetPort"))
    }
}

// MARK: - apply

@Suite("Services: apply to a running cluster")
struct ServiceApplyTests {
    static let webService = service("web", """
    type: NodePort
    clusterIP: 10.100.1.1
    selector: {app: web}
    ports:
    - name: http
      port: 80
      targetPort: http
      nodePort: 31234
    """)
    static let base = clusterHeader + labelledPod("web-a") + labelledPod("db", labels: "{app: db}") + webService

    func running() throws -> ClusterSpec { try SpecLoader.parse(Self.base, file: "cluster.yaml") }

    func applyProblems(_ text: String, to base: ClusterSpec) -> [SpecProblem] {
        do {
            _ = try SpecLoader.apply(text, file: "svc.yaml", to: base)
            Issue.record("expected apply to be rejected")
            return []
        } catch {
            return error.problems
        }
    }

    @Test func reapplyingKeepsClusterIPAndNodePort() throws {
        let base = try running()
        // Neither the address nor the node port is written: both are what the service had,
        // not what a hash of its name would give.
        let text = service("web", "type: NodePort\nselector: {app: web}\nports: [{name: http, port: 80, targetPort: http}]")
        let fresh = try only(SpecLoader.parse(clusterHeader + text, file: "c.yaml"), "web")
        #expect(fresh.clusterIP != IPv4Address("10.100.1.1"))
        let out = try SpecLoader.apply(text, file: "svc.yaml", to: base)
        #expect(out.services.count == 2) // and kube-system/kube-dns
        let s = try only(out, "web")
        #expect(s.clusterIP == IPv4Address("10.100.1.1"))
        #expect(s.ports.map(\.nodePort) == [31234])
        #expect(s.source.file == "svc.yaml")
        // Re-applying the original unchanged is a no-op for the service.
        let same = try SpecLoader.apply(Self.webService, file: "svc.yaml", to: base)
        #expect(try only(same, "web").sameAs(only(base, "web")))
    }

    @Test func reapplyingAnAllocatedServiceKeepsItsAddresses() throws {
        let text = service("api", "type: NodePort\nports: [{name: a, port: 80}, {name: b, port: 81}]")
        let base = try SpecLoader.parse(clusterHeader + text, file: "cluster.yaml")
        let out = try SpecLoader.apply(text, file: "svc.yaml", to: base)
        #expect(try only(out, "api").clusterIP == only(base, "api").clusterIP)
        #expect(try only(out, "api").ports == only(base, "api").ports)
    }

    @Test func changingTheClusterIPIsAnError() throws {
        let text = service("web", "type: NodePort\nclusterIP: 10.100.1.2\nselector: {app: web}\nports: [{name: http, port: 80, targetPort: http}]")
        let p = applyProblems(text, to: try running())
        #expect(p.count == 1, "\(p)")
        #expect(p.first?.description.hasPrefix("svc.yaml:\(line(of: "clusterIP:", in: text)):") == true, "\(p)")
        #expect(p.first?.location?.field == "spec.clusterIP")
        #expect(p.first?.message.contains("clusterIP cannot change (10.100.1.1 to 10.100.1.2): delete the service first") == true)
        let headless = service("web", "clusterIP: None\nselector: {app: web}\nports: [{name: http, port: 80}]")
        #expect(applyProblems(headless, to: try running()).first?.message.contains("cannot change between headless and not") == true)
    }

    @Test func reapplyingAHeadlessServiceKeepsItHeadless() throws {
        let base = try SpecLoader.parse(clusterHeader + service("db", "clusterIP: None\nselector: {app: db}\nports: [{port: 5432}]"), file: "cluster.yaml")
        #expect(try only(base, "db").headless)
        // The same service without the clusterIP line: a ClusterIP service keeps its address
        // when the field is left out, so a headless one should stay headless (or be refused,
        // as writing clusterIP explicitly would be).
        let text = service("db", "selector: {app: db}\nports: [{port: 5432}]")
        if let out = try? SpecLoader.apply(text, file: "svc.yaml", to: base) {
            let s = try only(out, "db")
            #expect(s.headless, "re-applied headless service lost headless: clusterIP \(s.clusterIP.map(\.description) ?? "nil")")
            #expect(s.clusterIP == nil)
        }
    }

    @Test func addingAServiceToARunningSpec() throws {
        let base = try running()
        let out = try SpecLoader.apply(service("api", ns: "shop", "type: NodePort\nselector: {app: api}\nports: [{port: 8080}]"), file: "svc.yaml", to: base)
        #expect(out.services.count == 3) // and kube-system/kube-dns
        #expect(try only(out, "web") == only(base, "web"))
        let api = try only(out, "api", ns: "shop")
        let ip = try #require(api.clusterIP)
        #expect(serviceSubnet.contains(ip) && ip != IPv4Address("10.100.1.1") && !isReserved(ip, in: serviceSubnet))
        #expect(api.ports[0].nodePort.map { ServiceSpec.nodePortRange.contains($0) && $0 != 31234 } == true)
        #expect(out.namespaces.contains("shop"))
        #expect(out.pods == base.pods)
        // Its selector matches nothing yet: a warning, not an error.
        #expect(out.warnings.contains { $0.contains("selector app=api matches no pod in namespace shop") }, "\(out.warnings)")
    }

    @Test func aNewServiceCannotTakeTheRunningOnesAddresses() throws {
        let base = try running()
        let ipText = service("api", "clusterIP: 10.100.1.1\nports: [{port: 80}]")
        let p = applyProblems(ipText, to: base)
        #expect(p.count == 1)
        #expect(p.first?.message.contains("clusterIP 10.100.1.1 is already taken by service default/web") == true, "\(p)")
        #expect(p.first?.location?.line == line(of: "clusterIP:", in: ipText))
        let npText = service("api", "type: NodePort\nports:\n- port: 80\n  nodePort: 31234")
        let q = applyProblems(npText, to: base)
        #expect(q.count == 1)
        #expect(q.first?.message.contains("nodePort 31234/TCP is already taken by service default/web") == true, "\(q)")
        #expect(q.first?.location?.field == "spec.ports[0].nodePort")
    }

    @Test func removingAService() throws {
        let base = try SpecLoader.apply(service("api", "ports: [{port: 80}]"), file: "svc.yaml", to: try running())
        let out = try base.removing(service: "web", namespace: "default")
        #expect(out.services.map(\.key) == ["kube-system/kube-dns", "default/api"])
        #expect(out.pods == base.pods)
        #expect(throws: SpecError.self) { try base.removing(service: "web", namespace: "shop") }
        do {
            _ = try base.removing(service: "nope", namespace: "default")
            Issue.record("removing an unknown service must fail")
        } catch {
            #expect(error.description == "service \"nope\" not found in namespace default")
        }
        // Once removed, its address and node port are free for another.
        let again = try SpecLoader.apply(service("other", "type: NodePort\nclusterIP: 10.100.1.1\nports: [{port: 80, nodePort: 31234}]"), file: "svc.yaml", to: out)
        #expect(try only(again, "other").clusterIP == IPv4Address("10.100.1.1"))
    }

    @Test func podsSelectedByAService() throws {
        let spec = try SpecLoader.parse(clusterHeader + labelledPod("web-a", labels: "{app: web, tier: fe}")
                                        + labelledPod("web-b", labels: "{app: web, tier: be}")
                                        + labelledPod("db", labels: "{app: db}")
                                        + labelledPod("web-c", ns: "shop", labels: "{app: web}"), file: "c.yaml")
        func picked(_ selector: [String: String]?, ns: String = "default") -> [String] {
            var s = ServiceSpec(namespace: ns, name: "x", source: MinikSpec.SourceLocation(file: "", line: 0, column: 0, field: ""))
            s.selector = selector
            return spec.pods(selectedBy: s).map(\.key).sorted()
        }
        #expect(picked(["app": "web"]) == ["default/web-a", "default/web-b"])
        #expect(picked(["app": "web", "tier": "fe"]) == ["default/web-a"])
        #expect(picked(["app": "web", "tier": "x"]) == [])
        #expect(picked(["app": "web"], ns: "shop") == ["shop/web-c"])
        #expect(picked(["app": "db"]) == ["default/db"])
        #expect(picked(nil) == [])
        #expect(picked([:]) == [])
    }
}

// MARK: - probes

@Suite("Services: container probes")
struct ProbeSpecTests {
    func container(_ spec: ClusterSpec) throws -> ContainerSpec {
        try #require(spec.pods.first?.containers.first)
    }

    @Test func readinessHTTPGetWithANamedPortAndDefaults() throws {
        let spec = try SpecLoader.parse(clusterHeader + probePod("""
        - name: server
          image: busybox
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: http}
        """), file: "c.yaml")
        let c = try container(spec)
        let p = try #require(c.readinessProbe)
        #expect(p.action == .httpGet(path: "/healthz", port: .name("http")))
        #expect(p.initialDelaySeconds == 0)
        #expect(p.periodSeconds == 10)
        #expect(p.timeoutSeconds == 1)
        #expect(p.successThreshold == 1)
        #expect(p.failureThreshold == 3)
        #expect(p == Probe(action: .httpGet(path: "/healthz", port: .name("http"))))
        #expect(p.summary == "http-get http://:http/healthz delay=0s timeout=1s period=10s #success=1 #failure=3")
        #expect(c.livenessProbe == nil)
        guard case .httpGet(_, let port) = p.action else { return }
        #expect(port.resolve(in: try #require(spec.pods.first)) == 8080)
    }

    @Test func settingsAndAPathWithoutSlash() throws {
        let spec = try SpecLoader.parse(clusterHeader + probePod("""
        - name: server
          image: busybox
          readinessProbe:
            httpGet: {path: ready, port: 8080}
            initialDelaySeconds: 5
            periodSeconds: 2
            timeoutSeconds: 3
            successThreshold: 2
            failureThreshold: 6
        """), file: "c.yaml")
        let p = try #require(try container(spec).readinessProbe)
        #expect(p.action == .httpGet(path: "/ready", port: .number(8080)))
        #expect(p.initialDelaySeconds == 5)
        #expect(p.periodSeconds == 2)
        #expect(p.timeoutSeconds == 3)
        #expect(p.successThreshold == 2)
        #expect(p.failureThreshold == 6)
        #expect(p.summary == "http-get http://:8080/ready delay=5s timeout=3s period=2s #success=2 #failure=6")
    }

    @Test func tcpSocketAndExec() throws {
        let spec = try SpecLoader.parse(clusterHeader + probePod("""
        - name: server
          image: busybox
          ports: [{name: db, containerPort: 5432}]
          readinessProbe:
            tcpSocket: {port: db}
          livenessProbe:
            exec: {command: [cat, /tmp/healthy]}
            failureThreshold: 1
        """), file: "c.yaml")
        let c = try container(spec)
        #expect(c.readinessProbe?.action == .tcpSocket(port: .name("db")))
        #expect(c.livenessProbe?.action == .exec(["cat", "/tmp/healthy"]))
        #expect(c.livenessProbe?.failureThreshold == 1)
        #expect(c.livenessProbe?.successThreshold == 1)
        #expect(c.livenessProbe?.summary == "exec [cat /tmp/healthy] delay=0s timeout=1s period=10s #success=1 #failure=1")
        #expect(c.readinessProbe?.summary.hasPrefix("tcp-socket :db ") == true)
    }

    @Test func probeWithoutAHandler() {
        let text = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    periodSeconds: 5")
        expectRejected(text, field: "spec.containers[0].readinessProbe", line: line(of: "periodSeconds", in: text),
                       saying: "a probe needs one of exec, httpGet or tcpSocket")
    }

    @Test func probeWithTwoHandlers() {
        let text = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    exec: {command: [true]}\n    tcpSocket: {port: 80}")
        expectRejected(text, field: "spec.containers[0].readinessProbe", line: line(of: "exec:", in: text),
                       saying: "a probe has one handler, not exec and tcpSocket")
    }

    @Test func namedPortNotDeclaredByTheContainer() {
        let text = clusterHeader + probePod("""
        - name: server
          image: busybox
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet:
              port: metrics
        """)
        expectRejected(text, field: "spec.containers[0].readinessProbe.httpGet.port", line: line(of: "port: metrics", in: text),
                       saying: "port \"metrics\" is not the name of a port of this container (named ports: http)")
        // Another container's port does not count: the probe belongs to this one.
        let other = clusterHeader + probePod("""
        - name: server
          image: busybox
          ports: [{name: http, containerPort: 8080}]
        - name: side
          image: busybox
          livenessProbe:
            tcpSocket: {port: http}
        """)
        expectRejected(other, field: "spec.containers[1].livenessProbe.tcpSocket.port", line: line(of: "tcpSocket:", in: other),
                       saying: "port \"http\" is not the name of a port of this container (named ports: none)")
    }

    @Test func livenessSuccessThresholdMustBeOne() {
        let text = clusterHeader + probePod("- name: server\n  image: busybox\n  livenessProbe:\n    tcpSocket: {port: 80}\n    successThreshold: 2")
        expectRejected(text, field: "spec.containers[0].livenessProbe.successThreshold", line: line(of: "successThreshold", in: text),
                       saying: "successThreshold of a livenessProbe must be 1")
    }

    @Test func periodSecondsZero() {
        let text = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    tcpSocket: {port: 80}\n    periodSeconds: 0")
        expectRejected(text, field: "spec.containers[0].readinessProbe.periodSeconds", line: line(of: "periodSeconds", in: text),
                       saying: "periodSeconds must be 1 or more")
    }

    @Test func grpcIsNotSupported() {
        let text = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    grpc: {port: 9000}")
        expectRejected(text, field: "spec.containers[0].readinessProbe.grpc", line: line(of: "grpc:", in: text),
                       saying: "grpc probes are not supported (use exec, httpGet or tcpSocket)")
    }

    @Test func otherProbeProblems() {
        let https = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    httpGet: {port: 443, scheme: HTTPS}")
        expectRejected(https, field: "spec.containers[0].readinessProbe.httpGet.scheme", line: line(of: "httpGet:", in: https),
                       saying: "scheme \"HTTPS\" is not supported")
        let noPort = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    tcpSocket: {}")
        expectRejected(noPort, field: "spec.containers[0].readinessProbe.tcpSocket", line: line(of: "tcpSocket:", in: noPort),
                       saying: "port is required")
        let noCommand = clusterHeader + probePod("- name: server\n  image: busybox\n  livenessProbe:\n    exec: {command: []}")
        expectRejected(noCommand, field: "spec.containers[0].livenessProbe.exec", line: line(of: "exec:", in: noCommand),
                       saying: "exec.command is required")
        let badPort = clusterHeader + probePod("- name: server\n  image: busybox\n  readinessProbe:\n    tcpSocket: {port: 0}")
        expectRejected(badPort, field: "spec.containers[0].readinessProbe.tcpSocket.port", line: line(of: "tcpSocket:", in: badPort),
                       saying: "port 0 is out of range (1-65535)")
    }

    @Test func aProbesNamedPortResolvesToItsOwnContainersPort() throws {
        // Two containers may each name a port "http" (Kubernetes checks port names per
        // container). The prober resolves a probe's port with PortRef.resolve(in: pod).
        let text = clusterHeader + probePod("""
        - name: front
          image: busybox
          ports: [{name: http, containerPort: 8080}]
        - name: admin
          image: busybox
          ports: [{name: http, containerPort: 9090}]
          readinessProbe:
            httpGet: {port: http}
        """)
        if let spec = try? SpecLoader.parse(text, file: "c.yaml") {
            let pod = try #require(spec.pods.first)
            let probe = try #require(pod.containers[1].readinessProbe)
            guard case .httpGet(_, let port) = probe.action else {
                Issue.record("expected an httpGet probe")
                return
            }
            // Resolved in its own container (kubelet's findPortByName), not the pod's first.
            #expect(port.resolve(in: pod.containers[1]) == 9090)
        }
    }

    @Test func aProbeOnANamedUDPPortOfItsContainerResolves() throws {
        // The spec accepts a probe naming any port of its container (as Kubernetes does:
        // kubelet's findPortByName ignores the protocol); the prober then resolves it with
        // PortRef.resolve(in: pod), whose protocol defaults to TCP.
        let text = clusterHeader + probePod("""
        - name: dns
          image: busybox
          ports: [{name: dns, containerPort: 53, protocol: UDP}]
          livenessProbe:
            tcpSocket: {port: dns}
        """)
        if let spec = try? SpecLoader.parse(text, file: "c.yaml") {
            let pod = try #require(spec.pods.first)
            guard case .tcpSocket(let port) = try #require(pod.containers[0].livenessProbe).action else {
                Issue.record("expected a tcpSocket probe")
                return
            }
            // By name only, whatever the protocol (the probe then connects over TCP).
            #expect(port.resolve(in: pod.containers[0]) == 53)
        }
    }
}
