// NetworkPolicy: decoding with the apiserver's defaults and checks (SpecNetworkPolicy.swift),
// label selectors with matchExpressions, and the per-node filter chains that enforce them
// (PolicyRules). Reuses clusterHeader, line(of:), expectRejected from SpecTests.swift.
import Foundation
@testable import MinikRuntime
import MinikSpec
import Testing

private func policy(_ name: String, ns: String = "default", _ body: String) -> String {
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: \(name)\n  namespace: \(ns)\nspec:\n\(indent(body, 2))\n"
}

@Suite("NetworkPolicy: the spec")
struct NetworkPolicySpecTests {
    @Test func decodesEveryFieldWithTheAPIServersDefaults() throws {
        let text = clusterHeader + policy("web", """
            podSelector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: In, values: [front, back]}]}
            ingress:
            - from:
              - podSelector: {matchLabels: {role: client}}
              - namespaceSelector: {matchLabels: {team: a}}
                podSelector: {}
              - ipBlock: {cidr: 172.18.0.0/16, except: [172.18.0.2/32]}
              ports: [{port: http}, {protocol: UDP, port: 53}, {port: 30000, endPort: 30100}]
            - {}
            egress:
            - to: [{podSelector: {}}]
            """) + policy("deny", ns: "other", "podSelector: {}")
        let spec = try SpecLoader.parse(text, file: "c.yaml")
        let web = try #require(spec.networkPolicies.first { $0.name == "web" })
        #expect(web.policyTypes == [.ingress, .egress], "egress rules present: Egress is added")
        #expect(web.podSelector.matchLabels == ["app": "web"])
        #expect(web.podSelector.matchExpressions == [.init(key: "tier", op: .in, values: ["front", "back"])])
        #expect(web.ingress.count == 2)
        #expect(web.ingress[1] == .init(), "{} allows everyone")
        let from = web.ingress[0].peers
        #expect(from[0].podSelector?.matchLabels == ["role": "client"] && from[0].namespaceSelector == nil)
        #expect(from[1].namespaceSelector?.matchLabels == ["team": "a"] && from[1].podSelector?.isEmpty == true)
        #expect(from[2].ipBlock == .init(cidr: try IPv4CIDR.parse("172.18.0.0/16"), except: [try IPv4CIDR.parse("172.18.0.2/32")]))
        #expect(web.ingress[0].ports == [.init(proto: "TCP", port: .name("http")), .init(proto: "UDP", port: .number(53)),
                                         .init(proto: "TCP", port: .number(30000), endPort: 30100)])
        let deny = try #require(spec.networkPolicies.first { $0.name == "deny" })
        #expect(deny.policyTypes == [.ingress] && deny.ingress.isEmpty && deny.podSelector.isEmpty)
        #expect(spec.namespaces.contains("other"))
    }

    @Test(arguments: [
        ("podSelector: {}\npolicyTypes: [Sideways]", "spec.policyTypes[0]", "policyType \"Sideways\" is not valid (use Ingress or Egress)"),
        ("ingress: []", "spec", "spec.podSelector is required"),
        ("podSelector: {matchExpressions: [{key: a, operator: In}]}", "spec.podSelector.matchExpressions[0]", "values must be non-empty when operator is In"),
        ("podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}", "spec.podSelector.matchExpressions[0].values", "values must be empty when operator is Exists"),
        ("podSelector: {matchExpressions: [{key: a, operator: Near}]}", "spec.podSelector.matchExpressions[0].operator", "operator \"Near\" is not valid"),
        ("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]}]", "spec.ingress[0].from[0].ipBlock.except[0]", "except 192.168.0.0/16 must be a strict subset of cidr 10.0.0.0/8"),
        ("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "spec.ingress[0].from[0].ipBlock", "may not have podSelector or namespaceSelector"),
        ("podSelector: {}\ningress: [{from: [{}]}]", "spec.ingress[0].from[0]", "a peer needs podSelector, namespaceSelector or ipBlock"),
        ("podSelector: {}\negress: [{ports: [{protocol: SCTP, port: 9}]}]", "spec.egress[0].ports[0].protocol", "protocol SCTP is not supported by minik"),
        ("podSelector: {}\negress: [{ports: [{port: 70000}]}]", "spec.egress[0].ports[0].port", "port 70000 is out of range"),
        ("podSelector: {}\negress: [{ports: [{port: http, endPort: 90}]}]", "spec.egress[0].ports[0].endPort", "endPort may not be used with a named port"),
        ("podSelector: {}\negress: [{ports: [{port: 90, endPort: 80}]}]", "spec.egress[0].ports[0].endPort", "endPort 80 must be at least port 90"),
        ("podSelector: {}\ningress: [{form: []}]", "spec.ingress[0].form", "unknown field"),
    ])
    func badInputIsRefusedAtItsPlace(body: String, field: String, phrase: String) {
        let text = clusterHeader + policy("p", body)
        let last = body.split(separator: "\n").last.map(String.init) ?? body
        expectRejected(text, field: field, line: line(of: last, after: "kind: NetworkPolicy", in: text), saying: phrase)
    }

    @Test func twiceIsRefused() {
        let text = clusterHeader + policy("p", "podSelector: {}") + policy("p", "podSelector: {}")
        let second = text.components(separatedBy: "\n").lastIndex { $0 == "  name: p" }.map { $0 + 1 } ?? -1
        expectRejected(text, field: "metadata", line: second, saying: "networkpolicy default/p is defined twice")
    }

    @Test func applyReplacesAndKeepsWhenItWasMade() throws {
        let base = try SpecLoader.parse(clusterHeader + policy("p", "podSelector: {}"), file: "c.yaml")
        let made = try #require(base.networkPolicies.first?.created)
        let next = try SpecLoader.apply(policy("p", "podSelector: {matchLabels: {a: b}}"), file: "p.yaml", to: base)
        #expect(next.networkPolicies.count == 1)
        #expect(next.networkPolicies[0].podSelector.matchLabels == ["a": "b"])
        #expect(next.networkPolicies[0].created == made)
        #expect(try next.removing(networkPolicy: "p", namespace: "default").networkPolicies.isEmpty)
        #expect(throws: SpecError.self) { try next.removing(networkPolicy: "q", namespace: "default") }
    }

    @Test func namespaceLabelsAreKept() throws {
        let spec = try SpecLoader.parse(clusterHeader + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n", file: "c.yaml")
        #expect(spec.labels(ofNamespace: "team-a") == ["team": "a", "kubernetes.io/metadata.name": "team-a"])
        #expect(spec.labels(ofNamespace: "default") == ["kubernetes.io/metadata.name": "default"])
    }

    @Test func selectorsMatchAsKubernetesDoes() {
        let s = LabelSelectorSpec(matchLabels: ["app": "web"], matchExpressions: [
            .init(key: "tier", op: .notIn, values: ["db"]), .init(key: "canary", op: .doesNotExist), .init(key: "team", op: .exists),
        ])
        #expect(s.matches(["app": "web", "team": "x"]))
        #expect(s.matches(["app": "web", "team": "x", "tier": "front"]))
        #expect(!s.matches(["app": "web", "team": "x", "tier": "db"]))
        #expect(!s.matches(["app": "web", "team": "x", "canary": ""]))
        #expect(!s.matches(["app": "web"]))
        #expect(LabelSelectorSpec().matches([:]))
    }
}

@Suite("NetworkPolicy: the rules on each node")
struct PolicyRulesTests {
    let a = PolicyPod(namespace: "default", name: "a", labels: ["app": "web"], ip: IPv4Address("10.244.1.2")!, node: "w1",
                      namedPorts: ["http/TCP": 8080])
    let b = PolicyPod(namespace: "default", name: "b", labels: ["app": "client"], ip: IPv4Address("10.244.2.3")!, node: "w2")
    let c = PolicyPod(namespace: "other", name: "c", labels: ["app": "client"], ip: IPv4Address("10.244.1.4")!, node: "w1",
                      namedPorts: ["http/TCP": 9090])

    func spec(_ body: String, ns: String = "default") throws -> NetworkPolicySpec {
        let s = try SpecLoader.parse(clusterHeader + policy("p", ns: ns, body), file: "c.yaml")
        return try #require(s.networkPolicies.first)
    }

    func render(_ ps: [NetworkPolicySpec], node: String, labels: [String: [String: String]] = [:]) -> [String: [String]] {
        PolicyRules.render(ps, pods: [a, b, c], namespaceLabels: labels, node: node)
    }

    @Test func withoutPoliciesTheChainIsEmpty() {
        #expect(render([], node: "w1") == [PolicyRules.chain: []])
    }

    @Test func anIngressPolicyGivesTheSelectedPodAChainOnItsNodeOnly() throws {
        let p = try spec("podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]")
        let w1 = render([p], node: "w1")
        let own = PolicyRules.chainName("MINIK-NP-I-", "default/a")
        #expect(w1[PolicyRules.chain] == [
            "-A MINIK-NETPOL -m comment --comment \"replies of allowed connections\" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            "-A MINIK-NETPOL -d 10.244.1.2/32 -m comment --comment \"default/a ingress\" -j \(own)",
        ])
        // b is a client in the policy's namespace; c is in another namespace: not a peer.
        // The named port is a's own.
        #expect(w1[own] == [
            "-A \(own) -s 10.244.2.3/32 -p tcp -m tcp --dport 8080 -m comment --comment \"default/p spec.ingress[0]\" -j RETURN",
            "-A \(own) -m comment --comment \"default/a ingress is not allowed by default/p\" -j DROP",
        ])
        #expect(render([p], node: "w2") == [PolicyRules.chain: []], "b is not isolated, and a is not on w2")
    }

    @Test func denyAllHasOnlyTheDrop() throws {
        let p = try spec("podSelector: {}\npolicyTypes: [Ingress, Egress]")
        let w2 = render([p], node: "w2")
        let e = PolicyRules.chainName("MINIK-NP-E-", "default/b"), i = PolicyRules.chainName("MINIK-NP-I-", "default/b")
        #expect(w2[e] == ["-A \(e) -m comment --comment \"default/b egress is not allowed by default/p\" -j DROP"])
        #expect(w2[i] == ["-A \(i) -m comment --comment \"default/b ingress is not allowed by default/p\" -j DROP"])
        // Egress is checked before ingress.
        #expect(w2[PolicyRules.chain]?.dropFirst().map { $0.contains(" -s ") } == [true, false])
        // c is in another namespace: not selected.
        #expect(render([p], node: "w1").keys.filter { $0.hasPrefix("MINIK-NP-") }.count == 2, "a only")
    }

    @Test func namespaceSelectorsUseTheNamespacesLabels() throws {
        let p = try spec("podSelector: {matchLabels: {app: web}}\ningress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}]}]")
        let own = PolicyRules.chainName("MINIK-NP-I-", "default/a")
        #expect(render([p], node: "w1")[own]?.count == 1, "no namespace has team=x: only the DROP")
        let rules = render([p], node: "w1", labels: ["other": ["team": "x"]])[own]
        #expect(rules?.first == "-A \(own) -s 10.244.1.4/32 -m comment --comment \"default/p spec.ingress[0]\" -j RETURN")
        // kubernetes.io/metadata.name is every namespace's.
        let byName = try spec("podSelector: {matchLabels: {app: web}}\ningress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}}]}]")
        #expect(render([byName], node: "w1")[own]?.first?.contains("-s 10.244.1.4/32") == true)
    }

    @Test func egressNamedPortsAreThePeersAndIPBlocksHaveExceptions() throws {
        let p = try spec("""
            podSelector: {matchLabels: {app: client}}
            policyTypes: [Egress]
            egress:
            - to: [{namespaceSelector: {}}]
              ports: [{port: http}]
            - to: [{ipBlock: {cidr: 172.18.0.0/16, except: [172.18.0.0/24]}}]
              ports: [{protocol: UDP, port: 53}]
            """)
        let own = PolicyRules.chainName("MINIK-NP-E-", "default/b")
        #expect(render([p], node: "w2")[own] == [
            // Every pod of every namespace, on its own port named http (b has none).
            "-A \(own) -d 10.244.1.2/32 -p tcp -m tcp --dport 8080 -m comment --comment \"default/p spec.egress[0]\" -j RETURN",
            "-A \(own) -d 10.244.1.4/32 -p tcp -m tcp --dport 9090 -m comment --comment \"default/p spec.egress[0]\" -j RETURN",
            "-A \(own) -d 172.18.1.0/24 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.2.0/23 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.4.0/22 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.8.0/21 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.16.0/20 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.32.0/19 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.64.0/18 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -d 172.18.128.0/17 -p udp -m udp --dport 53 -m comment --comment \"default/p spec.egress[1]\" -j RETURN",
            "-A \(own) -m comment --comment \"default/b egress is not allowed by default/p\" -j DROP",
        ])
    }

    @Test func aRuleWhosePeersMatchNobodyAllowsNothing() throws {
        let p = try spec("podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {matchLabels: {app: nobody}}}]}, {ports: [{port: 80, endPort: 90}]}]")
        let own = PolicyRules.chainName("MINIK-NP-I-", "default/a")
        #expect(render([p], node: "w1")[own] == [
            "-A \(own) -p tcp -m tcp --dport 80:90 -m comment --comment \"default/p spec.ingress[1]\" -j RETURN",
            "-A \(own) -m comment --comment \"default/a ingress is not allowed by default/p\" -j DROP",
        ])
    }

    @Test func subtractingCIDRs() throws {
        func c(_ s: String) throws -> IPv4CIDR { try IPv4CIDR.parse(s) }
        #expect(PolicyRules.subtract([], from: try c("10.0.0.0/8")) == [try c("10.0.0.0/8")])
        #expect(PolicyRules.subtract([try c("10.0.0.0/9")], from: try c("10.0.0.0/8")) == [try c("10.128.0.0/9")])
        let rest = PolicyRules.subtract([try c("10.0.0.0/8")], from: try c("0.0.0.0/0"))
        #expect(rest.map(\.description) == ["0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"])
        // Every address but the excepted ones is covered exactly once.
        let two = PolicyRules.subtract([try c("192.168.1.0/24"), try c("192.168.2.128/25")], from: try c("192.168.0.0/22"))
        let covered: Int = two.reduce(0) { (sum: Int, b: IPv4CIDR) -> Int in sum + (1 << (32 - b.prefix)) }
        #expect(covered == 640)
        #expect(!two.contains { $0.contains(IPv4Address("192.168.1.7")!) || $0.contains(IPv4Address("192.168.2.200")!) })
    }
}

@Suite("NetworkPolicy: FORWARD's first rule")
struct PolicyHookTests {
    @Test func theJumpToThePoliciesIsFirstInForwardOnceAndOthersRulesStay() throws {
        let rs = ProxyRules.render([], clusterCIDR: try IPv4CIDR.parse("10.244.0.0/16"))
        let hook = "-A FORWARD -m comment --comment \"minik network policies\" -j MINIK-NETPOL"
        func forward(_ text: String) -> [String] {
            let filter = text.components(separatedBy: "*filter\n").last ?? ""
            return filter.split(separator: "\n").map(String.init).filter { $0.hasPrefix("-A FORWARD ") }
        }
        // A fresh node: the policies' jump, then kube-proxy's.
        let fresh = forward(ProxyRules.fullRestoreText(rs, current: nil))
        #expect(fresh.first == hook)
        #expect(fresh.count == 1 + Ruleset.hooks.filter { $0.table == "filter" && $0.chain == "FORWARD" }.count)
        // A node that has it (not first, after a hand-made rule) and rules of its own: it
        // comes first, once, and the hand-made rule stays.
        let current = """
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD DROP [0:0]
            :OUTPUT ACCEPT [0:0]
            -A FORWARD -s 192.0.2.0/24 -j DROP
            \(hook)
            COMMIT
            """
        let text = ProxyRules.fullRestoreText(rs, current: current)
        let again = forward(text)
        #expect(again.first == hook && again.filter { $0 == hook }.count == 1)
        #expect(again.contains("-A FORWARD -s 192.0.2.0/24 -j DROP"))
        #expect(text.contains(":FORWARD DROP [0:0]"), "the policy of FORWARD is kept")
    }
}

