// Cluster DNS in the spec (SpecDNS.swift, ResolvConf.swift, Model.swift): MinikConfig dns
// and every rejection with its place, a pod's dnsPolicy and dnsConfig, the resolv.conf
// each policy gives (kubelet's rules, containerd's order), the system objects `up` adds
// and how apply, scale and delete treat them. Reuses clusterHeader, pod() and problems()
// from SpecTests.swift.
import Foundation
import MinikSpec
import Testing

// MARK: - helpers (indent, service, line(of:), expectRejected: SpecTests.swift)

/// A MinikConfig document whose dns mapping is `body` (written without indentation).
private func minikConfig(dns body: String) -> String {
    "---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\ndns:\n\(indent(body, 2))\n"
}

/// A pod with one container; `body` is more of its spec (written without indentation).
private func dnsPod(_ body: String = "", name: String = "p", ns: String = "default") -> String {
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: \(name), namespace: \(ns)}\nspec:\n\(indent(body, 2))\n  containers: [{name: c, image: busybox}]\n"
}

private func addr(_ s: String) -> IPv4Address { IPv4Address(s)! }

private func thePod(_ spec: ClusterSpec, _ name: String = "p", ns: String = "default",
                    sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> PodSpec {
    try #require(spec.pods.first { $0.name == name && $0.namespace == ns }, sourceLocation: sourceLocation)
}

private func resolvConf(_ text: String, pod name: String = "p", ns: String = "default",
                        sourceLocation: Testing.SourceLocation = #_sourceLocation) throws -> String {
    let spec = try SpecLoader.parse(text, file: "c.yaml")
    return ResolvConf.render(pod: try thePod(spec, name, ns: ns, sourceLocation: sourceLocation), cluster: spec)
}

/// A name of 250 characters (four labels), distinct per `n`.
private func longName(_ n: Int) -> String {
    let first = "d\(n)" + String(repeating: "a", count: 62 - "d\(n)".count)
    return [first, String(repeating: "b", count: 62), String(repeating: "c", count: 62), String(repeating: "e", count: 61)].joined(separator: ".")
}

// MARK: - MinikConfig dns

@Suite("DNS: MinikConfig dns")
struct DNSSettingsTests {
    @Test func defaults() throws {
        let spec = try SpecLoader.parse(clusterHeader, file: "c.yaml")
        #expect(spec.dns == DNSSettings())
        #expect(spec.dns.enabled)
        #expect(spec.dns.clusterDomain == "cluster.local")
        #expect(DNSSettings.defaultClusterDomain == "cluster.local")
        #expect(spec.dns.upstreams.isEmpty)
        #expect(spec.dns.ttl == 5)
        #expect(spec.dns.replicas == 2)
        #expect(spec.dnsServiceIP == addr("10.96.0.10"))
        #expect(spec.warnings.isEmpty, "\(spec.warnings)")
    }

    @Test func everyField() throws {
        let spec = try SpecLoader.parse(clusterHeader + minikConfig(dns: """
        enabled: true
        clusterDomain: lab.example
        upstream:
        - 172.18.0.1
        - "10.244.0.53:5353"
        - 10.96.0.53:53
        ttl: 30
        replicas: 3
        """), file: "c.yaml")
        #expect(spec.dns == DNSSettings(enabled: true, clusterDomain: "lab.example", upstreams: [
            DNSUpstream(ip: addr("172.18.0.1")), DNSUpstream(ip: addr("10.244.0.53"), port: 5353), DNSUpstream(ip: addr("10.96.0.53"), port: 53),
        ], ttl: 30, replicas: 3))
        #expect(spec.dns.upstreams.map(\.description) == ["172.18.0.1", "10.244.0.53:5353", "10.96.0.53"])
        #expect(spec.deployments.first { $0.key == ClusterDNS.deploymentKey }?.replicas == 3)
        #expect(spec.pods.filter { $0.namespace == "kube-system" }.map(\.name).allSatisfy(isReplicaName("minik-dns")))
        #expect(spec.pods.count { $0.namespace == "kube-system" } == 3)
        // The edges of the ranges.
        let edges = try SpecLoader.parse(clusterHeader + minikConfig(dns: "ttl: 0\nreplicas: 10"), file: "c.yaml")
        #expect(edges.dns.ttl == 0)
        #expect(edges.dns.replicas == 10)
        let top = try SpecLoader.parse(clusterHeader + minikConfig(dns: "ttl: 3600\nreplicas: 1\nupstream: []"), file: "c.yaml")
        #expect(top.dns.ttl == 3600)
        #expect(top.dns.replicas == 1)
        #expect(top.dns.upstreams.isEmpty)
    }

    @Test func disabled() throws {
        let spec = try SpecLoader.parse(clusterHeader + minikConfig(dns: "enabled: false"), file: "c.yaml")
        #expect(!spec.dns.enabled)
        #expect(spec.dnsServiceIP == nil)
    }

    @Test func upstreamsInsideEachOfTheClustersNetworks() throws {
        let spec = try SpecLoader.parse(clusterHeader + minikConfig(dns: "upstream: [10.244.3.7, 10.111.0.1, 172.18.255.254]"), file: "c.yaml")
        #expect(spec.dns.upstreams.map(\.ip) == [addr("10.244.3.7"), addr("10.111.0.1"), addr("172.18.255.254")])
        // The networks are the ones the file sets.
        let moved = try SpecLoader.parse(clusterHeader.replacingOccurrences(of: "name: lab\n", with: "name: lab\nnetworking: {podSubnet: 10.200.0.0/16}\n")
                                         + "---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\nnetwork: {underlaySubnet: 192.168.50.0/24}\ndns: {upstream: [10.200.9.9, 192.168.50.1]}\n", file: "c.yaml")
        #expect(moved.dns.upstreams.map(\.ip) == [addr("10.200.9.9"), addr("192.168.50.1")])
    }

    @Test func upstreamOutsideTheClustersNetworks() {
        let text = clusterHeader + minikConfig(dns: "upstream:\n- 172.18.0.1\n- 8.8.8.8")
        expectRejected(text, field: "dns.upstream[1]", line: line(of: "8.8.8.8", in: text),
                       saying: "upstream 8.8.8.8 is outside the cluster's networks (pod 10.244.0.0/16, service 10.96.0.0/12, underlay 172.18.0.0/16); minik sends no traffic outside its own namespaces")
        // With a port, and with DNS off: the same rule.
        let port = clusterHeader + minikConfig(dns: "enabled: false\nupstream:\n- \"1.1.1.1:5353\"")
        expectRejected(port, field: "dns.upstream[0]", line: line(of: "1.1.1.1", in: port),
                       saying: "upstream 1.1.1.1 is outside the cluster's networks")
    }

    @Test func upstreamSyntax() {
        for bad in ["dns.google", "8.8.8", "10.244.0.1:0", "10.244.0.1:65536", "10.244.0.1:", "10.244.0.1:53:53", "10.244.0.1:dns"] {
            let text = clusterHeader + minikConfig(dns: "upstream:\n- \"\(bad)\"")
            expectRejected(text, field: "dns.upstream[0]", line: line(of: bad, after: "upstream:", in: text),
                           saying: "upstream \"\(bad)\" is not an IPv4 address or IPv4:port (e.g. 172.18.0.1 or 172.18.0.1:5353)")
        }
    }

    @Test func atMostThreeUpstreams() {
        let text = clusterHeader + minikConfig(dns: "upstream: [172.18.0.1, 172.18.0.2, 172.18.0.3, 172.18.0.4]")
        expectRejected(text, field: "dns.upstream", line: line(of: "upstream:", in: text),
                       saying: "upstream lists 4 addresses; at most 3")
    }

    @Test func anUpstreamListedTwice() {
        let text = clusterHeader + minikConfig(dns: "upstream:\n- 172.18.0.1\n- \"172.18.0.1:53\"")
        expectRejected(text, field: "dns.upstream[1]", line: line(of: "172.18.0.1:53", in: text),
                       saying: "upstream 172.18.0.1 is listed twice")
    }

    @Test func theDNSServiceIsNotItsOwnUpstream() {
        let text = clusterHeader + minikConfig(dns: "upstream: [10.96.0.10]")
        expectRejected(text, field: "dns.upstream[0]", line: line(of: "upstream:", in: text),
                       saying: "upstream 10.96.0.10 is the cluster DNS service itself (kube-system/kube-dns): it would forward queries to itself")
    }

    @Test func clusterDomain() throws {
        for bad in ["Cluster.Local", "cluster.local.", ".local", "a..b", "-lab.local", "lab_1.local", String(repeating: "a.", count: 127) + "ab"] {
            let text = clusterHeader + minikConfig(dns: "clusterDomain: \"\(bad)\"")
            expectRejected(text, field: "dns.clusterDomain", line: line(of: "clusterDomain", in: text),
                           saying: "clusterDomain \"\(bad)\" is not a DNS name (lower-case labels of a-z, 0-9 and '-' separated by dots, no trailing dot, at most 253 characters)")
        }
        let one = try SpecLoader.parse(clusterHeader + minikConfig(dns: "clusterDomain: lab"), file: "c.yaml")
        #expect(one.dns.clusterDomain == "lab")
    }

    @Test func ttlAndReplicasRanges() {
        for (field, value, phrase) in [("ttl", "3601", "ttl 3601 is out of range (0-3600 seconds)"), ("ttl", "-1", "ttl -1 is out of range (0-3600 seconds)"),
                                       ("replicas", "0", "replicas 0 is out of range (1-10)"), ("replicas", "11", "replicas 11 is out of range (1-10)"),
                                       ("ttl", "5s", "must be an integer"), ("replicas", "two", "must be an integer")] {
            let text = clusterHeader + minikConfig(dns: "\(field): \(value)")
            expectRejected(text, field: "dns.\(field)", line: line(of: "\(field):", after: "dns:", in: text), saying: phrase)
        }
    }

    @Test func enabledMustBeABoolean() {
        let text = clusterHeader + minikConfig(dns: "enabled: maybe")
        expectRejected(text, field: "dns.enabled", line: line(of: "enabled", in: text), saying: "must be true or false")
    }

    @Test func unknownFieldWithASuggestion() {
        let text = clusterHeader + minikConfig(dns: "upstreams: [172.18.0.1]")
        expectRejected(text, field: "dns.upstreams", line: line(of: "upstreams", in: text),
                       saying: "unknown field \"upstreams\" in MinikConfig dns (did you mean \"upstream\"? valid fields: enabled, clusterDomain, upstream, ttl, replicas)")
        let notAMapping = clusterHeader + "---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\ndns: [on]\n"
        expectRejected(notAMapping, field: "dns", line: line(of: "dns:", in: notAMapping), saying: "MinikConfig dns must be a mapping")
    }

    @Test func theServiceSubnetMustHoldTheDNSAddress() throws {
        let small = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking: {serviceSubnet: 10.96.0.0/29}\n"
        expectRejected(small, field: "networking.serviceSubnet", line: 3,
                       saying: "serviceSubnet 10.96.0.0/29 has no room for the cluster DNS service, which takes its tenth address (use a /28 or wider, or set dns.enabled: false in MinikConfig)")
        // Without cluster DNS it is fine, and a /28 holds it.
        let off = try SpecLoader.parse(small + minikConfig(dns: "enabled: false"), file: "c.yaml")
        #expect(off.services.isEmpty)
        let fits = try SpecLoader.parse(small.replacingOccurrences(of: "/29", with: "/28"), file: "c.yaml")
        #expect(fits.services.map(\.clusterIP) == [addr("10.96.0.10")])
    }

    @Test func severalProblemsAtOnce() {
        let p = problems(clusterHeader + minikConfig(dns: "clusterDomain: X\nupstream: [9.9.9.9]\nttl: 99999\nreplicas: 0"))
        #expect(p.count == 4, "\(p)")
    }

    @Test func applyCannotChangeIt() throws {
        let base = try SpecLoader.parse(clusterHeader, file: "cluster.yaml")
        let text = minikConfig(dns: "enabled: false")
        expectRejected(text, field: "", line: 2, saying: "a MinikConfig is set when the cluster is created", base: base, file: "dns.yaml")
    }
}

// MARK: - a pod's dnsPolicy and dnsConfig

@Suite("DNS: pod dnsPolicy and dnsConfig")
struct PodDNSTests {
    @Test func defaultsToClusterFirstWithoutDNSConfig() throws {
        let spec = try SpecLoader.parse(clusterHeader + pod("a"), file: "c.yaml")
        let p = try thePod(spec, "a")
        #expect(p.dnsPolicy == .clusterFirst)
        #expect(p.dnsConfig == nil)
    }

    @Test func everyPolicy() throws {
        for policy in DNSPolicy.allCases where policy != .none {
            let spec = try SpecLoader.parse(clusterHeader + dnsPod("dnsPolicy: \(policy.rawValue)"), file: "c.yaml")
            #expect(try thePod(spec).dnsPolicy == policy)
            // No longer "ignored: not implemented".
            #expect(spec.warnings.isEmpty, "\(spec.warnings)")
        }
        #expect(DNSPolicy.allCases.map(\.rawValue) == ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"])
    }

    @Test func dnsConfigDecodes() throws {
        let spec = try SpecLoader.parse(clusterHeader + dnsPod("""
        dnsPolicy: None
        dnsConfig:
          nameservers: [10.96.0.10, 172.18.0.1]
          searches: [corp.example, "abs.example."]
          options:
          - {name: ndots, value: "2"}
          - name: edns0
          - {name: attempts, value: 3}
        """), file: "c.yaml")
        let p = try thePod(spec)
        #expect(p.dnsPolicy == DNSPolicy.none)
        #expect(p.dnsConfig == PodDNSConfig(nameservers: [addr("10.96.0.10"), addr("172.18.0.1")],
                                            searches: ["corp.example", "abs.example."],
                                            options: [DNSOption(name: "ndots", value: "2"), DNSOption(name: "edns0"), DNSOption(name: "attempts", value: "3")]))
        #expect(p.dnsConfig?.options.map(\.text) == ["ndots:2", "edns0", "attempts:3"])
        #expect(spec.warnings.isEmpty, "\(spec.warnings)")
        // An empty dnsConfig is a dnsConfig with nothing in it.
        let empty = try SpecLoader.parse(clusterHeader + dnsPod("dnsConfig: {}"), file: "c.yaml")
        #expect(try thePod(empty).dnsConfig == PodDNSConfig())
    }

    @Test func deploymentTemplatesHaveThemToo() throws {
        let spec = try SpecLoader.parse(clusterHeader + deployment("web", replicas: 3, """
        dnsPolicy: Default
        dnsConfig: {searches: [corp.example]}
        """), file: "c.yaml")
        let pods = spec.pods.filter { $0.owner == "Deployment/web" }
        #expect(pods.count == 3)
        #expect(pods.allSatisfy { $0.dnsPolicy == .default && $0.dnsConfig == PodDNSConfig(searches: ["corp.example"]) })
        #expect(spec.deployments.first { $0.name == "web" }?.template.dnsPolicy == .default)
    }

    @Test func badPolicy() {
        let text = clusterHeader + dnsPod("dnsPolicy: ClusterFirstt")
        expectRejected(text, field: "spec.dnsPolicy", line: line(of: "dnsPolicy", in: text),
                       saying: "dnsPolicy \"ClusterFirstt\" is not valid (use ClusterFirst, ClusterFirstWithHostNet, Default or None)")
    }

    @Test func noneNeedsANameserver() {
        let bare = clusterHeader + dnsPod("dnsPolicy: None")
        expectRejected(bare, field: "spec.dnsPolicy", line: line(of: "dnsPolicy", in: bare),
                       saying: "dnsPolicy None needs a dnsConfig with at least one nameserver")
        let searchesOnly = clusterHeader + dnsPod("dnsPolicy: None\ndnsConfig:\n  searches: [corp.example]")
        expectRejected(searchesOnly, field: "spec.dnsConfig", line: line(of: "searches", in: searchesOnly),
                       saying: "dnsPolicy None needs at least one nameserver in dnsConfig.nameservers")
        let emptyList = clusterHeader + dnsPod("dnsPolicy: None\ndnsConfig:\n  nameservers: []")
        expectRejected(emptyList, field: "spec.dnsConfig.nameservers", line: line(of: "nameservers", in: emptyList),
                       saying: "dnsPolicy None needs at least one nameserver in dnsConfig.nameservers")
    }

    @Test func atMostThreeNameservers() {
        let text = clusterHeader + dnsPod("dnsConfig:\n  nameservers: [10.96.0.10, 172.18.0.1, 172.18.0.2, 172.18.0.3]")
        expectRejected(text, field: "spec.dnsConfig.nameservers", line: line(of: "nameservers", in: text),
                       saying: "dnsConfig has 4 nameservers; at most 3")
    }

    @Test func nameserversAreIPv4() {
        let text = clusterHeader + dnsPod("dnsConfig:\n  nameservers:\n  - 172.18.0.1\n  - \"fd00::10\"")
        expectRejected(text, field: "spec.dnsConfig.nameservers[1]", line: line(of: "fd00::10", in: text),
                       saying: "nameserver \"fd00::10\" is not an IPv4 address (minik is IPv4 only)")
    }

    @Test func nameserverOutsideTheClustersNetworks() {
        let text = clusterHeader + dnsPod("dnsConfig:\n  nameservers:\n  - 10.96.0.10\n  - 1.1.1.1")
        expectRejected(text, field: "spec.dnsConfig.nameservers[1]", line: line(of: "1.1.1.1", in: text),
                       saying: "nameserver 1.1.1.1 is outside the cluster's networks (pod 10.244.0.0/16, service 10.96.0.0/12, underlay 172.18.0.0/16); minik sends no traffic outside its own namespaces")
        // In a Deployment's template: once, not once per replica.
        let d = clusterHeader + deployment("web", replicas: 3, "dnsPolicy: None\ndnsConfig: {nameservers: [8.8.4.4]}")
        expectRejected(d, field: "spec.template.spec.dnsConfig.nameservers[0]", line: line(of: "8.8.4.4", in: d),
                       saying: "nameserver 8.8.4.4 is outside the cluster's networks")
        // The subnets are the file's, wherever its Cluster document is.
        let later = dnsPod("dnsConfig: {nameservers: [10.200.0.10]}") + "---\n"
            + clusterHeader.replacingOccurrences(of: "name: lab\n", with: "name: lab\nnetworking: {serviceSubnet: 10.200.0.0/16}\n")
        #expect((try? SpecLoader.parse(later, file: "c.yaml")) != nil)
    }

    @Test func searches() throws {
        let bad = clusterHeader + dnsPod("dnsConfig:\n  searches:\n  - corp.example\n  - Corp_Example")
        expectRejected(bad, field: "spec.dnsConfig.searches[1]", line: line(of: "Corp_Example", in: bad),
                       saying: "search domain \"Corp_Example\" is not a DNS name")
        for name in ["", ".", "a..b", "corp.example.."] {
            let text = clusterHeader + dnsPod("dnsConfig:\n  searches:\n  - \"\(name)\"")
            expectRejected(text, field: "spec.dnsConfig.searches[0]", line: line(of: "- \"", after: "searches", in: text),
                           saying: "search domain \"\(name)\" is not a DNS name")
        }
        let many = clusterHeader + dnsPod("dnsConfig:\n  searches: [\((0...32).map { "s\($0).example" }.joined(separator: ", "))]")
        expectRejected(many, field: "spec.dnsConfig.searches", line: line(of: "searches", in: many),
                       saying: "dnsConfig has 33 search domains; at most 32")
        let names = (0..<9).map(longName)
        #expect(names.allSatisfy { $0.count == 250 })
        let long = clusterHeader + dnsPod("dnsConfig:\n  searches: [\(names.joined(separator: ", "))]")
        expectRejected(long, field: "spec.dnsConfig.searches", line: line(of: "searches", in: long),
                       saying: "dnsConfig searches are 2258 characters long together; at most 2048")
        // 32 domains, 8 long names, a trailing dot: fine.
        let ok = try SpecLoader.parse(clusterHeader + dnsPod("dnsConfig:\n  searches: [\((0..<32).map { "s\($0).example." }.joined(separator: ", "))]")
                                      + dnsPod("dnsConfig:\n  searches: [\(names.prefix(8).joined(separator: ", "))]", name: "q"), file: "c.yaml")
        #expect(try thePod(ok).dnsConfig?.searches.count == 32)
        #expect(try thePod(ok, "q").dnsConfig?.searches.count == 8)
    }

    @Test func options() {
        let noName = clusterHeader + dnsPod("dnsConfig:\n  options:\n  - {value: \"2\"}")
        expectRejected(noName, field: "spec.dnsConfig.options[0]", line: line(of: "value", in: noName),
                       saying: "a dnsConfig option needs a name (e.g. ndots, edns0)")
        let spaced = clusterHeader + dnsPod("dnsConfig:\n  options:\n  - {name: \"nd ots\"}")
        expectRejected(spaced, field: "spec.dnsConfig.options[0].name", line: line(of: "nd ots", in: spaced),
                       saying: "option name \"nd ots\" must not contain spaces or ':'")
        let unknown = clusterHeader + dnsPod("dnsConfig:\n  options:\n  - {name: ndots, vaule: \"2\"}")
        expectRejected(unknown, field: "spec.dnsConfig.options[0].vaule", line: line(of: "vaule", in: unknown),
                       saying: "unknown field \"vaule\" in a dnsConfig option (did you mean \"value\"?")
    }

    @Test func unknownFieldInDNSConfig() {
        let text = clusterHeader + dnsPod("dnsConfig:\n  nameserver: [10.96.0.10]")
        expectRejected(text, field: "spec.dnsConfig.nameserver", line: line(of: "nameserver:", in: text),
                       saying: "unknown field \"nameserver\" in dnsConfig (did you mean \"nameservers\"?")
    }

    @Test func applyChecksNameserversAgainstTheRunningCluster() throws {
        let base = try SpecLoader.parse(clusterHeader, file: "cluster.yaml")
        let text = dnsPod("dnsConfig:\n  nameservers: [192.0.2.53]")
        expectRejected(text, field: "spec.dnsConfig.nameservers[0]", line: line(of: "nameservers", in: text),
                       saying: "nameserver 192.0.2.53 is outside the cluster's networks", base: base, file: "pod.yaml")
        let ok = try SpecLoader.apply(dnsPod("dnsPolicy: None\ndnsConfig:\n  nameservers: [10.96.0.10]"), file: "pod.yaml", to: base)
        #expect(try thePod(ok).dnsPolicy == DNSPolicy.none)
    }
}

// MARK: - resolv.conf

@Suite("DNS: resolv.conf")
struct ResolvConfTests {
    @Test func clusterFirst() throws {
        #expect(try resolvConf(clusterHeader + dnsPod()) == """
        search default.svc.cluster.local svc.cluster.local cluster.local
        nameserver 10.96.0.10
        options ndots:5

        """)
        #expect(try resolvConf(clusterHeader + dnsPod(ns: "shop"), ns: "shop") == """
        search shop.svc.cluster.local svc.cluster.local cluster.local
        nameserver 10.96.0.10
        options ndots:5

        """)
        // ClusterFirstWithHostNet: minik pods have no host network, so ClusterFirst.
        #expect(try resolvConf(clusterHeader + dnsPod("dnsPolicy: ClusterFirstWithHostNet"))
                == resolvConf(clusterHeader + dnsPod("dnsPolicy: ClusterFirst")))
    }

    @Test func customClusterDomainAndServiceSubnet() throws {
        let header = clusterHeader.replacingOccurrences(of: "name: lab\n", with: "name: lab\nnetworking: {serviceSubnet: 10.100.0.0/16}\n")
        #expect(try resolvConf(header + minikConfig(dns: "clusterDomain: lab.example") + dnsPod(ns: "web"), ns: "web") == """
        search web.svc.lab.example svc.lab.example lab.example
        nameserver 10.100.0.10
        options ndots:5

        """)
    }

    @Test func defaultIsTheNodesResolverTheUpstreamsOnPort53() throws {
        let config = minikConfig(dns: "upstream:\n- 172.18.0.1\n- \"10.244.0.53:5353\"\n- 10.96.0.53")
        #expect(try resolvConf(clusterHeader + config + dnsPod("dnsPolicy: Default")) == """
        nameserver 172.18.0.1
        nameserver 10.96.0.53

        """)
        // No upstream (or none on port 53): a file that says so.
        let none = "# minik: the node has no resolver (MinikConfig dns.upstream lists no address on port 53)\n"
        #expect(try resolvConf(clusterHeader + dnsPod("dnsPolicy: Default")) == none)
        #expect(ResolvConf.noResolverComment + "\n" == none)
        #expect(try resolvConf(clusterHeader + minikConfig(dns: "upstream: [\"172.18.0.1:5353\"]") + dnsPod("dnsPolicy: Default")) == none)
    }

    @Test func clusterFirstWithoutClusterDNSFallsBackToDefault() throws {
        let off = minikConfig(dns: "enabled: false\nupstream: [172.18.0.1]")
        #expect(try resolvConf(clusterHeader + off + dnsPod()) == "nameserver 172.18.0.1\n")
        #expect(try resolvConf(clusterHeader + off + dnsPod("dnsPolicy: ClusterFirstWithHostNet")) == "nameserver 172.18.0.1\n")
        #expect(try resolvConf(clusterHeader + minikConfig(dns: "enabled: false") + dnsPod()) == ResolvConf.noResolverComment + "\n")
    }

    @Test func noneIsOnlyDNSConfig() throws {
        #expect(try resolvConf(clusterHeader + minikConfig(dns: "upstream: [172.18.0.1]") + dnsPod("""
        dnsPolicy: None
        dnsConfig:
          nameservers: [10.96.0.53, 10.96.0.53, 172.18.0.9]
          searches: [corp.example, corp.example, abs.example.]
          options: [{name: edns0}, {name: ndots, value: "1"}, {name: edns0, value: ""}]
        """)) == """
        search corp.example abs.example.
        nameserver 10.96.0.53
        nameserver 172.18.0.9
        options edns0 ndots:1

        """)
    }

    @Test func dnsConfigMergesOnTopOfClusterFirst() throws {
        // Policy's first, duplicates dropped, three nameservers; options by name, the pod's
        // value winning (ndots:5 becomes ndots:2).
        #expect(try resolvConf(clusterHeader + dnsPod("""
        dnsConfig:
          nameservers: [172.18.0.1, 10.96.0.10, 172.18.0.2]
          searches: [svc.cluster.local, corp.example]
          options: [{name: timeout, value: "1"}, {name: ndots, value: "2"}, {name: edns0}]
        """)) == """
        search default.svc.cluster.local svc.cluster.local cluster.local corp.example
        nameserver 10.96.0.10
        nameserver 172.18.0.1
        nameserver 172.18.0.2
        options ndots:2 timeout:1 edns0

        """)
        // Three of the pod's own after the cluster's: the last one does not fit.
        #expect(try resolvConf(clusterHeader + dnsPod("dnsConfig: {nameservers: [172.18.0.1, 172.18.0.2, 172.18.0.3]}")) == """
        search default.svc.cluster.local svc.cluster.local cluster.local
        nameserver 10.96.0.10
        nameserver 172.18.0.1
        nameserver 172.18.0.2
        options ndots:5

        """)
        // On top of Default.
        #expect(try resolvConf(clusterHeader + minikConfig(dns: "upstream: [172.18.0.1]")
                               + dnsPod("dnsPolicy: Default\ndnsConfig: {nameservers: [172.18.0.1, 10.244.0.53], searches: [corp.example], options: [{name: rotate}]}")) == """
        search corp.example
        nameserver 172.18.0.1
        nameserver 10.244.0.53
        options rotate

        """)
        // Searches on a node without a resolver: the comment, then the search line.
        #expect(try resolvConf(clusterHeader + dnsPod("dnsPolicy: Default\ndnsConfig: {searches: [corp.example]}"))
                == ResolvConf.noResolverComment + "\nsearch corp.example\n")
    }

    @Test func searchLimitsAfterTheMerge() throws {
        let spec = try SpecLoader.parse(clusterHeader + dnsPod(), file: "c.yaml")
        var p = try thePod(spec)
        // 3 of the cluster's and 32 of the pod's: 32 kept, the cluster's first.
        p.dnsConfig = PodDNSConfig(searches: (0..<32).map { "s\($0).example" })
        let c = ResolvConf.config(pod: p, cluster: spec)
        #expect(c.searches.count == 32)
        #expect(Array(c.searches.prefix(4)) == ["default.svc.cluster.local", "svc.cluster.local", "cluster.local", "s0.example"])
        #expect(c.searches.last == "s28.example")
        // 2048 characters at most: 57 of the cluster's and 8 x 251 of the pod's do not fit.
        p.dnsConfig = PodDNSConfig(searches: (0..<8).map(longName))
        let long = ResolvConf.config(pod: p, cluster: spec)
        #expect(long.searches.count == 10)
        #expect(long.searches.joined(separator: " ").utf8.count <= 2048)
        #expect(long.searches.last == longName(6))
        #expect(ResolvConf.render(long).hasPrefix("search default.svc.cluster.local svc.cluster.local cluster.local d0aaa"))
    }

    @Test func optionsRender() {
        #expect(ResolvConf.render(ResolvConf.Config(nameservers: [addr("10.96.0.10")],
                                                    options: [DNSOption(name: "ndots", value: "3"), DNSOption(name: "edns0"), DNSOption(name: "x", value: "")]))
                == "nameserver 10.96.0.10\noptions ndots:3 edns0 x\n")
        #expect(ResolvConf.clusterFirstOptions == [DNSOption(name: "ndots", value: "5")])
    }

    @Test func theDNSPodsUseTheNodesResolver() throws {
        let spec = try SpecLoader.parse(clusterHeader + minikConfig(dns: "upstream: [172.18.0.1]"), file: "c.yaml")
        let p = try #require(spec.pods.first { $0.owner == "Deployment/minik-dns" })
        #expect(ResolvConf.render(pod: p, cluster: spec) == "nameserver 172.18.0.1\n")
    }
}

// MARK: - the system objects

@Suite("DNS: system objects")
struct ClusterDNSObjectsTests {
    @Test func serviceDeploymentAndPods() throws {
        let spec = try SpecLoader.parse(clusterHeader + pod("a"), file: "c.yaml")
        // What the user wrote comes first.
        #expect(spec.pods.map(\.namespace) == ["default", "kube-system", "kube-system"])
        #expect(spec.pods.first?.name == "a" && spec.pods.dropFirst().map(\.name).allSatisfy(isReplicaName("minik-dns")))
        #expect(spec.services.map(\.key) == ["kube-system/kube-dns"])
        #expect(spec.deployments.map(\.key) == ["kube-system/minik-dns"])
        #expect(spec.namespaces.contains("kube-system"))
        let minik = MinikSpec.SourceLocation(file: "<minik>", line: 0, column: 0, field: "")
        #expect(ClusterDNS.source == minik)

        let s = try #require(spec.services.first)
        #expect(s.key == ClusterDNS.serviceKey)
        #expect(s.labels == ["k8s-app": "kube-dns", "kubernetes.io/name": "minik-dns"])
        #expect(s.selector == ["k8s-app": "kube-dns"])
        #expect(s.type == .clusterIP)
        #expect(s.clusterIP == addr("10.96.0.10"))
        #expect(s.clusterIP == spec.dnsServiceIP)
        #expect(!s.headless)
        #expect(s.isProxied)
        #expect(s.ports == [ServicePort(name: "dns", proto: "UDP", port: 53, targetPort: .name("dns")),
                            ServicePort(name: "dns-tcp", proto: "TCP", port: 53, targetPort: .name("dns-tcp"))])
        #expect(s.source == minik)

        let d = try #require(spec.deployments.first)
        #expect(d.namespace == "kube-system" && d.name == "minik-dns")
        #expect(d.replicas == 2)
        #expect(d.selector == ["k8s-app": "kube-dns"])
        #expect(d.template.name == "minik-dns-0")

        let pods = spec.pods.filter { $0.namespace == "kube-system" }
        #expect(spec.pods(selectedBy: s).map(\.key) == pods.map(\.key))
        #expect(pods.count == 2)
        let hash = try #require(d.replicaSets.first?.hash)
        #expect(d.replicaSets.count == 1 && d.replicaSets[0].replicas == 2 && d.replicaSets[0].revision == 1)
        for p in pods {
            #expect(p.labels == ["k8s-app": "kube-dns", "pod-template-hash": hash])
            #expect(p.name.hasPrefix("minik-dns-\(hash)-"))
            #expect(p.nodeName == "lab-control-plane")
            #expect(p.requestedNodeName == "lab-control-plane")
            #expect(p.owner == "Deployment/minik-dns")
            #expect(p.dnsPolicy == .default)
            #expect(p.dnsConfig == nil)
            #expect(p.restartPolicy == "Always")
            #expect(p.source == minik)
            #expect(p.initContainers.isEmpty)
            #expect(p.containers.count == 1)
            #expect(s.ports[0].targetPort.resolve(in: p, proto: "UDP") == 53)
            #expect(s.ports[1].targetPort.resolve(in: p, proto: "TCP") == 53)
        }
        let c = try #require(pods.first?.containers.first)
        #expect(c.name == "dns")
        #expect(c.image == "minik-dns")
        #expect(c.command.isEmpty)
        #expect(c.args == ["--zone", "/etc/minik-dns/zone"])
        #expect(c.ports == [ContainerPort(name: "dns", containerPort: 53, proto: "UDP"), ContainerPort(name: "dns-tcp", containerPort: 53, proto: "TCP")])
        #expect(c.clusterDirMounts == [ClusterDirMount(subpath: "dns", mountPath: "/etc/minik-dns", readOnly: true)])
        #expect(c.source == minik)
        var readiness = Probe(action: .tcpSocket(port: .name("dns-tcp")))
        readiness.periodSeconds = 1
        readiness.failureThreshold = 3
        #expect(c.readinessProbe == readiness)
        var liveness = Probe(action: .tcpSocket(port: .number(53)))
        liveness.periodSeconds = 10
        liveness.failureThreshold = 5
        liveness.initialDelaySeconds = 5
        #expect(c.livenessProbe == liveness)
        #expect(PortRef.name("dns-tcp").resolve(in: c) == 53)
        #expect(ClusterDNS.zonePath == "/etc/minik-dns/zone")
        // A user's container never gets a cluster directory.
        #expect(try thePod(spec, "a").containers.allSatisfy { $0.clusterDirMounts.isEmpty })
    }

    @Test func onTheFirstControlPlane() throws {
        let spec = try SpecLoader.parse("""
        kind: Cluster
        apiVersion: kind.x-k8s.io/v1alpha4
        nodes: [{role: worker}, {role: control-plane}, {role: control-plane}]
        """, file: "c.yaml")
        #expect(spec.pods.map(\.nodeName) == ["kind-control-plane", "kind-control-plane"])
        #expect(spec.pods.map(\.name).allSatisfy(isReplicaName("minik-dns")) && spec.pods.count == 2)
    }

    @Test func theirPlaceComesFirst() {
        // One node: the DNS pods have their place, so the 252nd pod of the file is the one
        // that does not fit.
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: one\n" + (0..<252).map { pod("p\($0)") }.joined()
        let p = problems(text)
        #expect(p.count == 1)
        #expect(p.first?.message.contains("pod default/p251 would be pod number 254 on node one-control-plane") == true, "\(p)")
        #expect(p.first?.location?.line == line(of: "name: p251", in: text))
        let off = (try? SpecLoader.parse(text + minikConfig(dns: "enabled: false"), file: "c.yaml"))?.pods.count
        #expect(off == 252)
    }

    @Test func disabledMeansNoSystemObjects() throws {
        let spec = try SpecLoader.parse(clusterHeader + minikConfig(dns: "enabled: false") + pod("a"), file: "c.yaml")
        #expect(spec.pods.map(\.key) == ["default/a"])
        #expect(spec.services.isEmpty)
        #expect(spec.deployments.isEmpty)
        // The user may then run their own kube-system/kube-dns, on the DNS address, and
        // Deployment minik-dns.
        let own = try SpecLoader.parse(clusterHeader + minikConfig(dns: "enabled: false")
                                       + service("kube-dns", ns: "kube-system", "clusterIP: 10.96.0.10\nselector: {app: dns}\nports: [{port: 53, protocol: UDP}]")
                                       + deployment("minik-dns", ns: "kube-system", replicas: 2), file: "c.yaml")
        #expect(own.services.first { $0.key == "kube-system/kube-dns" }?.clusterIP == addr("10.96.0.10"))
        #expect(own.pods.count == 2 && own.pods.allSatisfy { $0.namespace == "kube-system" && isReplicaName("minik-dns")($0.name) })
        #expect(own.pods.allSatisfy { $0.image == "busybox" })
    }

    @Test func theDNSAddressIsForKubeDNSOnly() {
        for dns in ["", minikConfig(dns: "enabled: false")] {
            let text = clusterHeader + dns + service("mine", "clusterIP: 10.96.0.10\nports: [{port: 53}]")
            expectRejected(text, field: "spec.clusterIP", line: line(of: "clusterIP", in: text),
                           saying: "clusterIP 10.96.0.10 cannot be used: reserved for the cluster DNS service (kube-system/kube-dns)")
        }
        // No allocation hands it out either, even in a subnet with one free address left.
        let header = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking: {serviceSubnet: 10.96.0.0/28}\n"
        let text = header + (0..<13).map { service("s\($0)", "ports: [{port: 80}]") }.joined()
        expectRejected(text, field: "metadata", line: line(of: "name: s12", in: text),
                       saying: "serviceSubnet 10.96.0.0/28 has no free address left for service default/s12")
    }

    @Test func userDocumentsCannotReplaceThem() {
        let svc = clusterHeader + service("kube-dns", ns: "kube-system", "selector: {app: dns}\nports: [{port: 53, protocol: UDP}]")
        expectRejected(svc, field: "metadata", line: line(of: "name: kube-dns", in: svc),
                       saying: "kube-system/kube-dns is minik's cluster DNS service; to run your own, set dns.enabled: false in MinikConfig")
        let dep = clusterHeader + deployment("minik-dns", ns: "kube-system", replicas: 3)
        expectRejected(dep, field: "metadata", line: line(of: "name: minik-dns", in: dep),
                       saying: "kube-system/minik-dns is minik's cluster DNS deployment; to run your own, set dns.enabled: false in MinikConfig")
        // Elsewhere, they are anybody's; pods may have any name (the Deployment's pods
        // get names no pod has).
        let fine = clusterHeader + service("kube-dns", "ports: [{port: 53}]") + deployment("minik-dns") + dnsPod(name: "minik-dns-7", ns: "kube-system")
            + dnsPod(name: "coredns", ns: "kube-system")
        let spec = try? SpecLoader.parse(fine, file: "c.yaml")
        #expect(spec?.pods.count { $0.namespace == "kube-system" } == 4)
    }

    @Test func applyKeepsThemAndRefusesToReplaceThem() throws {
        let base = try SpecLoader.parse(clusterHeader + pod("a"), file: "cluster.yaml")
        let out = try SpecLoader.apply(pod("b") + service("web", "selector: {app: web}\nports: [{port: 80}]")
                                       + deployment("api", replicas: 2), file: "more.yaml", to: base)
        for key in ["kube-system/minik-dns-0", "kube-system/minik-dns-1"] {
            #expect(out.pods.first { $0.key == key } == base.pods.first { $0.key == key })
        }
        #expect(out.services.first { $0.key == ClusterDNS.serviceKey } == base.services.first { $0.key == ClusterDNS.serviceKey })
        #expect(out.deployments.map(\.key) == ["kube-system/minik-dns", "default/api"])
        #expect(out.dns == base.dns)

        let svc = service("kube-dns", ns: "kube-system", "ports: [{port: 53}]")
        expectRejected(svc, field: "metadata", line: line(of: "name: kube-dns", in: svc),
                       saying: "kube-system/kube-dns is minik's cluster DNS service", base: base, file: "svc.yaml")
        let dep = deployment("minik-dns", ns: "kube-system")
        expectRejected(dep, field: "metadata", line: line(of: "name: minik-dns", in: dep),
                       saying: "kube-system/minik-dns is minik's cluster DNS deployment", base: base, file: "dep.yaml")
        // Without cluster DNS, apply lets the user have them.
        let off = try SpecLoader.parse(clusterHeader + minikConfig(dns: "enabled: false"), file: "cluster.yaml")
        let own = try SpecLoader.apply(svc, file: "svc.yaml", to: off)
        #expect(own.services.map(\.key) == ["kube-system/kube-dns"])
    }

    @Test func scaleAndDeleteWorkAsForOtherObjects() throws {
        let base = try SpecLoader.parse(clusterHeader, file: "cluster.yaml")
        var rng = SystemRandomNumberGenerator()
        let three = try base.scaled(deployment: "minik-dns", namespace: "kube-system", replicas: 3).rolledOut(RolloutObservation(), random: &rng).spec
        #expect(three.pods.map(\.name).allSatisfy(isReplicaName("minik-dns")) && three.pods.count == 3)
        #expect(three.pods.allSatisfy { $0.nodeName == "lab-control-plane" && $0.containers[0].clusterDirMounts.count == 1 })
        let none = try base.removing(deployment: "minik-dns", namespace: "kube-system")
        #expect(none.pods.isEmpty)
        #expect(none.deployments.isEmpty)
        let noService = try base.removing(service: "kube-dns", namespace: "kube-system")
        #expect(noService.services.isEmpty)
        #expect(noService.pods == base.pods)
    }

    @Test func stateRoundTripsAndOlderStateDecodes() throws {
        let spec = try SpecLoader.parse(clusterHeader + minikConfig(dns: "clusterDomain: lab.example\nupstream: [\"172.18.0.1:5353\"]")
                                        + dnsPod("dnsPolicy: None\ndnsConfig: {nameservers: [10.96.0.10], options: [{name: edns0}]}"), file: "c.yaml")
        let data = try JSONEncoder().encode(spec)
        #expect(try JSONDecoder().decode(ClusterSpec.self, from: data) == spec)
        // A state file written before cluster DNS: no dns, dnsPolicy, dnsConfig or
        // clusterDirMounts anywhere.
        func strip(_ v: Any) -> Any {
            if let d = v as? [String: Any] {
                return d.filter { !["dns", "dnsPolicy", "dnsConfig", "clusterDirMounts"].contains($0.key) }.mapValues(strip)
            }
            if let a = v as? [Any] { return a.map(strip) }
            return v
        }
        let old = try JSONSerialization.data(withJSONObject: strip(try JSONSerialization.jsonObject(with: data)))
        let decoded = try JSONDecoder().decode(ClusterSpec.self, from: old)
        // That cluster was made without cluster DNS.
        #expect(decoded.dns == DNSSettings(enabled: false))
        #expect(decoded.dnsServiceIP == nil)
        #expect(decoded.pods.allSatisfy { $0.dnsPolicy == .clusterFirst && $0.dnsConfig == nil })
        #expect(decoded.pods.flatMap(\.containers).allSatisfy { $0.clusterDirMounts.isEmpty })
        #expect(decoded.nodes == spec.nodes)
        #expect(decoded.services == spec.services)
        // Settings written partly take the defaults for the rest.
        let partial = try JSONDecoder().decode(DNSSettings.self, from: Data(#"{"clusterDomain": "lab"}"#.utf8))
        #expect(partial == DNSSettings(clusterDomain: "lab"))
    }
}

private extension PodSpec {
    var image: String { containers.first?.image ?? "" }
}
