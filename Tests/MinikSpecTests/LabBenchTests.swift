// The lab bench's pure parts: fault values as users write them, the fault chains'
// rules and their reading back from iptables-save, and pingall's ICMP.
import MinikNetlink
import MinikRuntime
import MinikSpec
import Testing

@Suite("the lab bench's rules and values")
struct LabBenchTests {
    @Test("rates are read as tc reads them and printed as tc prints them")
    func rates() {
        #expect(FaultRules.parseRate("10mbit") == 10_000_000)
        #expect(FaultRules.parseRate("10Mbit") == 10_000_000)
        #expect(FaultRules.parseRate("512kbit") == 512_000)
        #expect(FaultRules.parseRate("2mbps") == 16_000_000)
        #expect(FaultRules.parseRate("1.5gbit") == 1_500_000_000)
        #expect(FaultRules.parseRate("9600") == 9600)
        for bad in ["", "fast", "10 mbit", "-1mbit", "0mbit", "10mb", "mbit", "1bit"] { #expect(FaultRules.parseRate(bad) == nil, "\(bad)") }
        #expect(FaultRules.rateText(10_000_000) == "10Mbit")
        #expect(FaultRules.rateText(1_500_000_000) == "1.5Gbit")
        #expect(FaultRules.rateText(512_000) == "512Kbit")
        #expect(FaultRules.rateText(800) == "800bit")
        let t = FaultRules.tbf(bitsPerSecond: 10_000_000)
        #expect(t.rate == 1_250_000 && t.burst == 25_000 && t.limit == 125_000)
        #expect(FaultRules.tbf(bitsPerSecond: 64_000).burst == 16_384, "the bucket holds a full frame at any rate")
    }

    @Test("loss shares: above 0 and at most 100")
    func percents() {
        #expect(FaultRules.parsePercent("20%") == 20)
        #expect(FaultRules.parsePercent("0.5") == 0.5)
        for bad in ["0%", "101%", "-5%", "x", "%"] { #expect(FaultRules.parsePercent(bad) == nil, "\(bad)") }
        #expect(FaultRules.percentText(20) == "20%" && FaultRules.percentText(0.5) == "0.5%")
    }

    @Test("a node's fault chains: rules rendered, written with their hooks, read back with counters")
    func chains() {
        let addresses = ["w1": IPv4Address(172, 18, 0, 3), "w2": IPv4Address(172, 18, 0, 4)]
        let faults: [Fault] = [.partitionOf("w2", "w1"), .loss(node: "w1", percent: 20), .loss(node: "w2", percent: 5)]
        let rules = FaultRules.rules(node: "w1", faults: faults, addresses: addresses)
        #expect(rules.in == [
            "-m statistic --mode random --probability 0.20000000000 -m comment --comment \"minik fault: loss w1 20%\" -j DROP",
            "-s 172.18.0.4/32 -m comment --comment \"minik fault: partition w1 w2\" -j DROP",
        ])
        #expect(rules.out.last == "-d 172.18.0.4/32 -m comment --comment \"minik fault: partition w1 w2\" -j DROP")
        let text = FaultRules.restoreText(rules: rules, uplink: "eth0", hooksPresent: false)
        #expect(text.hasPrefix("*mangle\n:MINIK-FAULTS-IN - [0:0]\n:MINIK-FAULTS-OUT - [0:0]\n"))
        #expect(text.contains("-A PREROUTING -i eth0 -m comment --comment \"minik faults\" -j MINIK-FAULTS-IN\n"))
        #expect(!FaultRules.restoreText(rules: rules, uplink: "eth0", hooksPresent: true).contains("PREROUTING"))
        let removal = FaultRules.restoreText(rules: ([], []), uplink: "eth0", hooksPresent: true)
        #expect(removal.contains("-D POSTROUTING -o eth0 -m comment --comment \"minik faults\" -j MINIK-FAULTS-OUT\n-X MINIK-FAULTS-IN\n"))
        #expect(FaultRules.restoreText(rules: ([], []), uplink: "eth0", hooksPresent: false).isEmpty)

        // As iptables-save -c prints it (the kernel rounds the probability).
        let save = """
        *mangle
        :PREROUTING ACCEPT [10:800]
        :MINIK-FAULTS-IN - [0:0]
        [12:1000] -A PREROUTING -i eth0 -m comment --comment "minik faults" -j MINIK-FAULTS-IN
        [3:252] -A MINIK-FAULTS-IN -m statistic --mode random --probability 0.20000000019 -m comment --comment "minik fault: loss w1 20%" -j DROP
        [4:336] -A MINIK-FAULTS-IN -s 172.18.0.4/32 -m comment --comment "minik fault: partition w1 w2" -j DROP
        [2:168] -A MINIK-FAULTS-OUT -d 172.18.0.4/32 -m comment --comment "minik fault: partition w1 w2" -j DROP
        [0:0] -A MINIK-FAULTS-OUT -p tcp -j DROP
        COMMIT
        """
        let o = FaultRules.parse(save: save, node: "w1")
        #expect(o.hooksPresent)
        #expect(o.faults == [.loss(node: "w1", percent: 20): 3, .partitionOf("w1", "w2"): 6])
        #expect(o.handMade == ["-A MINIK-FAULTS-OUT -p tcp -j DROP"])
        #expect(!FaultRules.parse(save: "*mangle\nCOMMIT\n", node: "w1").hooksPresent)
    }

    @Test("pingall's echo requests carry a valid checksum; replies and ICMP errors are matched to their pair")
    func icmp() {
        let req = PingAll.echoRequest(id: 0x1234, sequence: 7)
        #expect(req.count == 64 && req[0] == 8 && Reachability.checksum(req) == 0)
        func ipv4(_ src: [UInt8], _ payload: [UInt8]) -> [UInt8] {
            [0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0] + src + [10, 244, 0, 2] + payload
        }
        var reply = req
        reply[0] = 0
        let ok = PingAll.parse(ipv4([10, 244, 1, 2], reply), id: 0x1234, count: 8)
        #expect(ok?.0 == 7 && ok?.1 == .reply(milliseconds: 0))
        #expect(PingAll.parse(ipv4([10, 244, 1, 2], reply), id: 0x1235, count: 8) == nil, "another source's reply")
        #expect(PingAll.parse(ipv4([10, 244, 1, 2], reply), id: 0x1234, count: 4) == nil, "a sequence out of range")
        // Host unreachable from the gateway, quoting our request.
        let quoted = ipv4([10, 244, 0, 2], Array(req.prefix(8)))
        let error = ipv4([10, 244, 0, 1], [3, 1, 0, 0, 0, 0, 0, 0] + quoted)
        let parsed = PingAll.parse(error, id: 0x1234, count: 8)
        #expect(parsed?.0 == 7 && parsed?.1 == .error(from: IPv4Address(10, 244, 0, 1), reason: "Destination Host Unreachable"))
        #expect(PingAll.parse(ipv4([10, 244, 1, 2], req), id: 0x1234, count: 8) == nil, "someone's echo request")
        #expect(PingAll.parse([0x45, 0, 0], id: 0x1234, count: 8) == nil)
    }
}

@Suite("capture: pcapng blocks and targets")
struct CaptureFormatTests {
    /// Walks a pcapng stream's blocks: (type, body) with each block's two lengths checked.
    func blocks(_ b: [UInt8]) -> [(UInt32, [UInt8])]? {
        func u32(_ o: Int) -> UInt32 { UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24 }
        var out: [(UInt32, [UInt8])] = []
        var o = 0
        while o < b.count {
            guard o + 12 <= b.count else { return nil }
            let len = Int(u32(o + 4))
            guard len % 4 == 0, len >= 12, o + len <= b.count, u32(o + len - 4) == UInt32(len) else { return nil }
            out.append((u32(o), Array(b[(o + 8)..<(o + len - 4)])))
            o += len
        }
        return out
    }

    @Test("a section, an interface per target and packets with direction, each block well formed")
    func pcapng() throws {
        var stream = PcapNG.sectionHeader(comment: Capture.vxlanComment, application: "minik capture")
        stream += PcapNG.interfaceDescription(name: "lab-worker:eth0", description: "eth0 of node lab-worker", snaplen: 262_144)
        let frame: [UInt8] = Array(repeating: 0xab, count: 61)
        frame.withUnsafeBytes {
            PcapNG.appendEnhancedPacket(to: &stream, interface: 0, timestampNs: 1_700_000_000_123_456_789, data: $0, wireLength: 1500, outgoing: true)
        }
        let b = try #require(blocks(stream))
        #expect(b.map(\.0) == [0x0A0D_0D0A, 1, 6])
        #expect(Array(b[0].1.prefix(4)) == [0x4D, 0x3C, 0x2B, 0x1A], "byte-order magic, little-endian")
        #expect(String(decoding: b[1].1, as: UTF8.self).contains("lab-worker:eth0"))
        #expect(Array(b[1].1.prefix(2)) == [1, 0], "Ethernet")
        let epb = b[2].1
        let ts = UInt64(epb[4]) | UInt64(epb[5]) << 8 | UInt64(epb[6]) << 16 | UInt64(epb[7]) << 24
        let tsLow = UInt64(epb[8]) | UInt64(epb[9]) << 8 | UInt64(epb[10]) << 16 | UInt64(epb[11]) << 24
        #expect(ts << 32 | tsLow == 1_700_000_000_123_456_789)
        #expect(Array(epb[12..<20]) == [61, 0, 0, 0, 0xdc, 0x05, 0, 0], "captured 61 of 1500")
        #expect(Array(epb[20..<81]) == frame && Array(epb[81..<84]) == [0, 0, 0], "padded to 4")
        #expect(Array(epb[84...]) == [2, 0, 4, 0, 2, 0, 0, 0, 0, 0, 0, 0], "epb_flags outbound, end of options")
    }

    let cluster = CaptureTargets.Cluster(
        name: "lab", nodes: [("lab-worker", "minik-lab.lab-worker"), ("lab-worker2", "minik-lab.lab-worker2")],
        pods: [("default", "web-0", "minik-lab.default.web-0"), ("backend", "db", "minik-lab.backend.db")])
    func links(_ netns: String) -> [String] {
        netns.hasSuffix("underlay") ? ["lo", "br-lab", "lab-1", "lab-2"] : ["lo", "eth0", "cni0", "flannel.1", "veth1234"]
    }

    @Test("targets: a node and its interfaces, a whole node, pods, the underlay; bad words named")
    func targets() throws {
        let two = try CaptureTargets.resolve(["lab-worker", "eth0", "lab-worker2", "flannel.1"], namespace: "default", cluster: cluster, interfaces: links)
        #expect(two.map(\.label) == ["lab-worker:eth0", "lab-worker2:flannel.1"])
        #expect(two[1].netns == "minik-lab.lab-worker2" && two[1].interface == "flannel.1")
        let whole = try CaptureTargets.resolve(["node/lab-worker"], namespace: "default", cluster: cluster, interfaces: links)
        #expect(whole.map(\.interface) == ["eth0", "cni0", "flannel.1", "veth1234"], "every interface but lo")
        let pods = try CaptureTargets.resolve(["pod/web-0", "pod/backend/db", "pod/web-0"], namespace: "default", cluster: cluster, interfaces: links)
        #expect(pods.map(\.label) == ["default/web-0:eth0", "backend/db:eth0"], "each once")
        #expect(try CaptureTargets.resolve(["pod/db"], namespace: "backend", cluster: cluster, interfaces: links).map(\.netns) == ["minik-lab.backend.db"])
        #expect(try CaptureTargets.resolve(["underlay", "lab-2"], namespace: "default", cluster: cluster, interfaces: links).map(\.label) == ["underlay:lab-2"])
        #expect(try CaptureTargets.resolve(["underlay"], namespace: "default", cluster: cluster, interfaces: links).map(\.interface) == ["br-lab"])

        #expect(throws: CaptureTargets.Failure.self) { try CaptureTargets.resolve([], namespace: "default", cluster: cluster, interfaces: links) }
        do {
            _ = try CaptureTargets.resolve(["lab-worker", "eth9"], namespace: "default", cluster: cluster, interfaces: links)
            Issue.record("eth9 accepted")
        } catch {
            #expect(error.description.contains("\"eth9\"") && error.description.contains("interfaces of node lab-worker: lo, eth0, cni0"), "\(error)")
        }
        do {
            _ = try CaptureTargets.resolve(["pod/nope"], namespace: "default", cluster: cluster, interfaces: links)
            Issue.record("a missing pod accepted")
        } catch {
            #expect(error.description == "pod \"nope\" not found in namespace default of cluster lab")
        }
        #expect(Capture.checkFilter("icmp or udp port 8472") == nil)
        #expect(Capture.checkFilter("udp port") != nil)
    }
}

@Suite("trace's netfilter walk and route lookup")
struct NetfilterWalkTests {
    let save = """
    # Generated by iptables-save
    *nat
    :PREROUTING ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-SVC-A - [0:0]
    :KUBE-SEP-1 - [0:0]
    :KUBE-SEP-2 - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    [7:420] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    -A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
    -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-A
    -A KUBE-SVC-A ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ
    -A KUBE-SVC-A -m comment --comment "ns/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-1
    -A KUBE-SVC-A -m comment --comment "ns/web:http -> 10.244.2.2:8080" -j KUBE-SEP-2
    -A KUBE-SEP-1 -s 10.244.1.2/32 -m comment --comment "ns/web:http" -j KUBE-MARK-MASQ
    -A KUBE-SEP-1 -p tcp -m comment --comment "ns/web:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080
    -A KUBE-SEP-2 -p tcp -m tcp -j DNAT --to-destination 10.244.2.2:8080
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
    -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
    COMMIT
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD DROP [0:0]
    :KUBE-FORWARD - [0:0]
    -A FORWARD -j KUBE-FORWARD
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    -A KUBE-FORWARD -i cni0 -m comment --comment "pods may leave" -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "odd match" -m foo --bar 1 -j ACCEPT
    COMMIT
    """

    @Test("iptables-save -c is read into tables, chains, policies, counters and comments")
    func parse() {
        let t = Netfilter.parse(save: save)
        #expect(Set(t.keys) == ["nat", "filter"])
        #expect(t["filter"]?.policies["FORWARD"] == "DROP")
        #expect(t["nat"]?.chains["PREROUTING"]?.first?.packets == 7)
        #expect(t["nat"]?.chains["KUBE-SVC-A"]?.map(\.comment) == ["ns/web:http cluster IP", "ns/web:http -> 10.244.1.2:8080", "ns/web:http -> 10.244.2.2:8080"])
    }

    @Test("a service's DNAT: the chains on the way, the random pick named, the tuple before and after; masquerade by mark")
    func dnat() {
        let t = Netfilter.parse(save: save)
        var p = Netfilter.Packet(source: IPv4Address(10, 244, 0, 2), destination: IPv4Address(10, 96, 0, 10), proto: "tcp",
                                 sourcePort: 40000, destinationPort: 80, inInterface: "cni0")
        let r = Netfilter.walk(t, table: "nat", chain: "PREROUTING", packet: p, localAddresses: [])
        #expect(r.dnat?.from == "10.96.0.10:80" && r.dnat?.to == "10.244.1.2:8080")
        #expect(r.packet.destination == IPv4Address(10, 244, 1, 2) && r.packet.mark == 0, "a pod source is not marked")
        let acting = r.steps.filter(\.isDecisive)
        #expect(acting.count == 1 && acting[0].via == ["PREROUTING", "KUBE-SERVICES (\"kubernetes service portals\")",
                                                        "KUBE-SVC-A (\"ns/web:http cluster IP\")", "KUBE-SEP-1 (\"ns/web:http -> 10.244.1.2:8080\")"])
        #expect(r.steps.contains { $0.note == "random: taken with probability 0.50000000000" })
        // From outside the pod network: marked, then masqueraded on the way out.
        p.source = IPv4Address(172, 18, 0, 9)
        let ext = Netfilter.walk(t, table: "nat", chain: "PREROUTING", packet: p, localAddresses: [])
        #expect(ext.packet.mark == 0x4000)
        let post = Netfilter.walk(t, table: "nat", chain: "POSTROUTING", packet: ext.packet, localAddresses: [])
        #expect(post.snat?.hasPrefix("masqueraded") == true && post.packet.mark == 0)
        let unmarked = Netfilter.walk(t, table: "nat", chain: "POSTROUTING", packet: r.packet, localAddresses: [])
        #expect(unmarked.snat == nil && unmarked.verdict == .policy("ACCEPT"))
    }

    @Test("filter: ACCEPT by a rule, the chain's DROP policy otherwise; a match not understood is said")
    func filter() {
        let t = Netfilter.parse(save: save)
        var p = Netfilter.Packet(source: IPv4Address(10, 244, 0, 2), destination: IPv4Address(10, 244, 2, 2), proto: "tcp",
                                 sourcePort: 40000, destinationPort: 8080, inInterface: "cni0", outInterface: "flannel.1")
        #expect(Netfilter.walk(t, table: "filter", chain: "FORWARD", packet: p, localAddresses: []).verdict == .accept)
        p.inInterface = "eth0"
        let r = Netfilter.walk(t, table: "filter", chain: "FORWARD", packet: p, localAddresses: [])
        #expect(r.verdict == .drop("filter FORWARD: policy DROP"))
        #expect(r.notUnderstood == ["KUBE-FORWARD: -A KUBE-FORWARD -m comment --comment \"odd match\" -m foo --bar 1 -j ACCEPT: --bar is not understood by minik trace: taken as not matching"])
        #expect(Netfilter.walk(t, table: "raw", chain: "PREROUTING", packet: p, localAddresses: []).verdict == .accept, "no such table")
    }

    @Test("the route lookup: local table first, then the longest prefix of main")
    func lookup() {
        var v = KernelView()
        func route(_ table: UInt32, _ type: UInt8, _ dst: IPv4Address, _ prefix: Int, via: IPv4Address? = nil) -> KernelView.Route {
            KernelView.Route(table: table, type: type, destination: dst.value, prefix: prefix, gateway: via?.value, outputIndex: 2,
                             onlink: false, preferredSource: nil, scope: 0)
        }
        v.routes = [route(254, 1, IPv4Address(0), 0, via: IPv4Address(172, 18, 0, 1)), route(254, 1, IPv4Address(10, 244, 2, 0), 24),
                    route(254, 1, IPv4Address(10, 244, 0, 0), 16, via: IPv4Address(172, 18, 0, 4)), route(255, 2, IPv4Address(10, 244, 2, 1), 32)]
        #expect(Trace.lookup(v, IPv4Address(10, 244, 2, 7))?.prefix == 24)
        #expect(Trace.lookup(v, IPv4Address(10, 244, 9, 7))?.prefix == 16)
        #expect(Trace.lookup(v, IPv4Address(8, 8, 8, 8))?.prefix == 0)
        #expect(Trace.lookup(v, IPv4Address(10, 244, 2, 1))?.type == 2)
        v.routes.removeFirst()
        #expect(Trace.lookup(v, IPv4Address(8, 8, 8, 8)) == nil)
    }
}

@Suite("trace --live: the kernel's trace read back")
struct LiveTraceParseTests {
    // As xtables-monitor --trace printed it for a probe to a service (shortened).
    let monitor = """
    PACKET: 2 3114542c IN=cni0 MACSRC=a:58:a:f4:0:2 SRC=10.244.0.2 DST=10.102.137.187 LEN=60 TOS=0x0 TTL=64 ID=19344 DF SPORT=43210 DPORT=80 SYN 
     TRACE: 2 3114542c raw:PREROUTING:rule:0x3:CONTINUE  -4 -t raw -A PREROUTING -p tcp -m tcp --sport 43210 -m comment --comment "minik trace --live" -j TRACE
     TRACE: 2 3114542c raw:PREROUTING:policy:ACCEPT 
    PACKET: 2 3114542c IN=cni0 MACSRC=a:58:a:f4:0:2 SRC=10.244.0.2 DST=10.102.137.187 LEN=60 TOS=0x0 TTL=64 ID=19344 DF SPORT=43210 DPORT=80 SYN 
     TRACE: 2 3114542c nat:PREROUTING:rule:0x12:JUMP:KUBE-SERVICES  -4 -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
     TRACE: 2 3114542c nat:KUBE-SEP-NH6B:rule:0x22:ACCEPT  -4 -t nat -A KUBE-SEP-NH6B -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:8080
    PACKET: 2 86be5a10 IN=cni0 OUT=flannel.1 SRC=10.244.0.2 DST=10.244.1.3 LEN=60 TOS=0x0 TTL=63 ID=19344 DF SPORT=43210 DPORT=8080 SYN 
     TRACE: 2 86be5a10 filter:FORWARD:rule:0x8:JUMP:KUBE-FORWARD  -4 -t filter -A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
     TRACE: 2 86be5a10 filter:FORWARD:policy:ACCEPT 
    PACKET: 2 3114542c IN=cni0 SRC=10.244.0.2 DST=10.102.137.187 LEN=52 TOS=0x0 TTL=64 ID=19346 DF SPORT=43210 DPORT=80 ACK FIN 
     TRACE: 2 3114542c filter:KUBE-FORWARD:rule:0xe:ACCEPT  -4 -t filter -A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    """

    @Test("the first packet's rules, by its IP ID (trace ids are reused); the marking rule and policies left out")
    func parse() {
        let hits = Trace.parseMonitor(monitor, proto: "tcp")
        #expect(hits.map(\.chain) == ["PREROUTING", "KUBE-SEP-NH6B", "FORWARD"])
        #expect(hits.map(\.table) == ["nat", "nat", "filter"])
        #expect(hits[1].rule == "-A KUBE-SEP-NH6B -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:8080")
        #expect(Trace.parseMonitor("", proto: "tcp").isEmpty)
    }

    @Test("model and kernel compared per place, both ways")
    func compare() {
        let a = Trace.RuleHit(place: "node w1", table: "nat", chain: "PREROUTING", rule: "-A PREROUTING -j X")
        let b = Trace.RuleHit(place: "node w1", table: "filter", chain: "FORWARD", rule: "-A FORWARD -j DROP")
        let c = Trace.RuleHit(place: "node w2", table: "nat", chain: "PREROUTING", rule: "-A PREROUTING -j X")
        let d = Trace.compare(model: [a, c], kernel: [a, b])
        #expect(d.kernelOnly == [b] && d.modelOnly == [c])
        #expect(Trace.compare(model: [a], kernel: [a]).kernelOnly.isEmpty)
    }
}

@Suite("the bug lab's knobs in the spec")
struct BugLabSpecTests {
    let head = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: b\nnodes: [{role: control-plane}, {role: worker}]\n---\napiVersion: minik.dev/v1alpha1\nkind: MinikConfig\n"

    @Test("pathMTU, hairpinMode and bridgeNetfilter: read, defaulted, checked")
    func knobs() throws {
        let plain = try SpecLoader.parse(head + "network: {backend: vxlan}\n", file: "c.yaml")
        #expect(plain.network.underlayMTU == 1500 && plain.network.hairpin && plain.network.callsIptablesOnBridges)
        let bugs = try SpecLoader.parse(head + "network: {mtu: 1500, pathMTU: 1400, hairpinMode: false, bridgeNetfilter: false}\n", file: "c.yaml")
        #expect(bugs.network.underlayMTU == 1400 && bugs.network.podMTU == 1450 && !bugs.network.hairpin && !bugs.network.callsIptablesOnBridges)
        let text = head + "network:\n  mtu: 1400\n  pathMTU: 1500\n"
        expectRejected(text, field: "network.pathMTU", line: line(of: "pathMTU", in: text), saying: "pathMTU 1500 is larger than mtu 1400")
        let low = head + "network:\n  pathMTU: 100\n"
        expectRejected(low, field: "network.pathMTU", line: line(of: "pathMTU", in: low), saying: "out of range (576-9000)")
        let notBool = head + "network:\n  hairpinMode: sometimes\n"
        #expect(!problems(notBool).isEmpty)
        #expect(try SpecLoader.parse(head + "network: {podMACs: random}\n", file: "c.yaml").network.randomPodMACs)
        #expect(!plain.network.randomPodMACs)
        let macs = head + "network:\n  podMACs: sometimes\n"
        expectRejected(macs, field: "network.podMACs", line: line(of: "podMACs", in: macs), saying: "use stable or random")
    }
}

@Suite("graph: the topology built from kernel views")
struct TopologyBuildTests {
    /// A node's view: eth0, cni0, flannel.1 with FDB entries to `peers`, one veth per pod.
    func node(_ n: Int, peers: [Int], veths: [String], eth0Carrier: Bool = true) -> KernelView {
        var v = KernelView()
        v.links = [KernelView.Link(index: 2, name: "eth0", kind: "veth", hasCarrier: eth0Carrier),
                   KernelView.Link(index: 3, name: "cni0", kind: "bridge"),
                   KernelView.Link(index: 4, name: "flannel.1", kind: "vxlan", vxlan: KernelView.VXLAN(vni: 1, port: 8472))]
        for (i, name) in veths.enumerated() { v.links.append(KernelView.Link(index: Int32(10 + i), name: name, kind: "veth", master: 3)) }
        v.addresses = [KernelView.Address(index: 3, address: IPv4Address(10, 244, UInt8(n), 1).value, prefix: 24)]
        v.fdb = peers.map { KernelView.FDBEntry(index: 4, mac: [2, 0x6d, 0x6b, 0, UInt8($0), 1], destination: IPv4Address(172, 18, 0, UInt8($0 + 2)).value) }
        return v
    }

    @Test("tunnels both ways merged, one way in red; veths to their pods; a port down; DOT and Mermaid hold together")
    func build() throws {
        var underlay = KernelView()
        underlay.links = [KernelView.Link(index: 2, name: "br-lab", kind: "bridge"),
                          KernelView.Link(index: 3, name: "lab-0", kind: "veth", master: 2),
                          KernelView.Link(index: 4, name: "lab-1", kind: "veth", master: 2, isUp: false)]
        let nodes = [
            Topology.NodeInput(name: "cp", index: 0, internalIP: IPv4Address(172, 18, 0, 2), podCIDR: try IPv4CIDR.parse("10.244.0.0/24"),
                               kernel: node(0, peers: [1], veths: ["veth0a"])),
            // w1 lost its FDB entry for cp: the tunnel is one way.
            Topology.NodeInput(name: "w1", index: 1, internalIP: IPv4Address(172, 18, 0, 3), podCIDR: try IPv4CIDR.parse("10.244.1.0/24"),
                               kernel: node(1, peers: [], veths: ["veth1a", "vethorphan"], eth0Carrier: false)),
        ]
        let pods = [Topology.PodInput(key: "default/a", node: "cp", ip: IPv4Address(10, 244, 0, 2), hostVeth: "veth0a", state: "Running"),
                    Topology.PodInput(key: "default/b", node: "w1", ip: IPv4Address(10, 244, 1, 2), hostVeth: "veth1a", state: "NotReady")]
        let t = Topology.build(cluster: "lab", underlay: underlay, underlaySubnet: try IPv4CIDR.parse("172.18.0.0/16"),
                               nodes: nodes, pods: pods, services: [])
        let tunnels = t.edges.filter { $0.style == .tunnel }
        #expect(tunnels.count == 1 && tunnels[0].broken && !tunnels[0].bothWays && tunnels[0].label.contains("no FDB entry back"), "\(tunnels)")
        #expect(t.edges.contains { $0.from == Topology.id("pod", "default/a") && $0.to == Topology.id("cp", "veth0a") })
        #expect(t.vertices.contains { $0.id == Topology.id("w1", "vethorphan") }, "a veth no pod owns is drawn")
        #expect(t.edges.contains { $0.from == Topology.id("w1", "eth0") && $0.label == "lab-1" && $0.broken }, "the port that is down")
        #expect(t.vertices.first { $0.id == Topology.id("pod", "default/b") }?.state == "NotReady")
        #expect(Topology.colour(t.vertices.first { $0.id == Topology.id("pod", "default/b") }!) == "#fff2b3")
        let dot = t.dot()
        #expect(dot.hasPrefix("digraph \"minik lab\" {") && dot.hasSuffix("}\n") && dot.contains("subgraph \"cluster_v_node_w1\""))
        let mermaid = t.mermaid()
        #expect(mermaid.hasPrefix("flowchart LR\n") && mermaid.components(separatedBy: "\n  subgraph ").count == mermaid.components(separatedBy: "\n  end\n").count)
        // With both entries, one edge, both ways.
        var both = nodes
        both[1].kernel = node(1, peers: [0], veths: ["veth1a"])
        let t2 = Topology.build(cluster: "lab", underlay: underlay, underlaySubnet: try IPv4CIDR.parse("172.18.0.0/16"), nodes: both, pods: pods, services: [])
        #expect(t2.edges.filter { $0.style == .tunnel }.map(\.bothWays) == [true])
    }
}
