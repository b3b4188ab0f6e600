// The service proxy of every node: kube-proxy's iptables mode, run by the supervisor.
// It keeps, per node, the rule set it last applied; a sync renders the desired rule set
// (ProxyRules) and sends each node only the chains that differ, in one
// `iptables-restore --noflush` transaction (atomic: the node never sees half a change).
// A check every `checkInterval` seconds looks for its canary rule and its jump from
// POSTROUTING; when someone flushed the tables, the node gets everything again, as
// kube-proxy re-syncs when its canary chain disappears.
import Foundation
import MinikSpec

public final class ServiceProxy: @unchecked Sendable {
    public static let checkInterval = 2.0
    /// Changes of more chains than this are applied as whole tables (fullRestoreText).
    public static let fullRestoreChains = 500

    let nodes: [NodeRuntime]
    let clusterCIDR: IPv4CIDR
    private let lock = NSLock()
    /// What each node has now; nil: unknown (fresh or broken), the next sync writes all.
    private var applied: [String: Ruleset] = [:]
    /// The last sync's rendered service ports, reused when a port did not change.
    private var fragments: [String: (ProxyServicePort, ProxyRules.Fragment)] = [:]
    /// The last sync's network policy chains per node, reused while their input stays.
    private var policyChains: (input: PolicyInput, chains: [String: [String: [String]]])?
    private var fresh: Set<String>
    private var status: [String: ProxyNodeStatus]
    private let restore: String
    private let save: String
    private let iptables: String
    /// MINIK_PROXY_FANOUT: the dispatch chains' split point; a huge value gives kube-proxy's
    /// flat KUBE-SERVICES (the benchmarks compare both).
    private let fanOut: Int

    public init(nodes: [NodeRuntime], clusterCIDR: IPv4CIDR) throws(RuntimeError) {
        self.nodes = nodes
        self.clusterCIDR = clusterCIDR
        fresh = Set(nodes.map(\.spec.name))
        status = Dictionary(uniqueKeysWithValues: nodes.map { ($0.spec.name, ProxyNodeStatus(node: $0.spec.name)) })
        guard let r = Command.which("iptables-restore"), let s = Command.which("iptables-save"), let i = Command.which("iptables") else {
            throw .state("iptables, iptables-restore and iptables-save are needed for services (install the iptables package: make deps)")
        }
        restore = r
        save = s
        iptables = i
        fanOut = ProcessInfo.processInfo.environment["MINIK_PROXY_FANOUT"].flatMap { Int($0) }.map { max($0, 16) } ?? ProxyRules.fanOut
    }

    public var statuses: [ProxyNodeStatus] {
        lock.lock(); defer { lock.unlock() }
        return nodes.compactMap { status[$0.spec.name] }
    }

    /// Brings every node to the rule set for `ports`; nodes are written in parallel.
    /// Returns the errors (one per node that failed; that node is rewritten whole next time).
    @discardableResult
    public func sync(_ ports: [ProxyServicePort], policies: PolicyInput = PolicyInput()) -> [String] {
        let started = Date()
        // Only the service ports that changed since the last sync are rendered again.
        var parts: [(key: String, proto: String, fragment: ProxyRules.Fragment)] = []
        var next: [String: (ProxyServicePort, ProxyRules.Fragment)] = [:]
        next.reserveCapacity(ports.count)
        lock.lock()
        let cache = fragments
        lock.unlock()
        // A Local traffic policy makes a port's rules differ per node: those ports get a
        // fragment per node, and each node its own assembly.
        var perNode: [String: [(key: String, proto: String, fragment: ProxyRules.Fragment)]] = [:]
        for sp in ports {
            let key = sp.portKey
            let id = key + "/" + sp.proto
            if sp.dependsOnNode {
                for node in nodes.map(\.spec.name) {
                    let nid = id + "@" + node
                    let f: ProxyRules.Fragment
                    if let hit = cache[nid], hit.0 == sp { f = hit.1 } else { f = ProxyRules.fragment(sp, clusterCIDR: clusterCIDR, node: node) }
                    next[nid] = (sp, f)
                    perNode[node, default: []].append((key, sp.proto, f))
                }
                continue
            }
            let f: ProxyRules.Fragment
            if let hit = cache[id], hit.0 == sp { f = hit.1 } else { f = ProxyRules.fragment(sp, clusterCIDR: clusterCIDR) }
            next[id] = (sp, f)
            parts.append((key, sp.proto, f))
        }
        let shared = perNode.isEmpty ? ProxyRules.assemble(parts, clusterCIDR: clusterCIDR, fanOut: fanOut) : nil
        lock.lock()
        fragments = next
        lock.unlock()
        // Each node's rule set: the shared one, or its own assembly when a Local traffic
        // policy makes them differ, with its own pods' network policy chains (rendered
        // again only when the policies, the pods or the namespaces' labels changed).
        let common = parts, local = perNode
        lock.lock()
        let cachedPolicies = policyChains?.input == policies ? policyChains?.chains : nil
        lock.unlock()
        let built = Collected<(Int, Ruleset, [String: [String]])>()
        DispatchQueue.concurrentPerform(iterations: nodes.count) { i in
            let name = nodes[i].spec.name
            var desired = shared ?? ProxyRules.assemble(common + (local[name] ?? []), clusterCIDR: clusterCIDR, fanOut: fanOut)
            let chains = cachedPolicies?[name] ?? (policies.policies.isEmpty ? [:]
                : PolicyRules.render(policies.policies, pods: policies.pods, namespaceLabels: policies.namespaceLabels, node: name))
            for (chain, rules) in chains { desired.filter[chain] = rules }
            built.append((i, desired, chains))
        }
        let desired = Dictionary(built.items.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        lock.lock()
        policyChains = (policies, Dictionary(built.items.map { (nodes[$0.0].spec.name, $0.2) }, uniquingKeysWith: { a, _ in a }))
        lock.unlock()
        let renderMillis = (Date().timeIntervalSince(started) * 10000).rounded() / 10
        lock.lock()
        for k in status.keys { status[k]!.lastRenderMillis = renderMillis }
        lock.unlock()
        let errors = Collected<String>()
        DispatchQueue.concurrentPerform(iterations: nodes.count) { i in
            if let e = self.sync(node: nodes[i], to: desired[i]!) { errors.append(e) }
        }
        return errors.items
    }

    private func sync(node: NodeRuntime, to desired: Ruleset) -> String? {
        let name = node.spec.name
        lock.lock()
        let old = applied[name]
        let isFresh = fresh.contains(name)
        lock.unlock()
        let repairing = old == nil && !isFresh
        var plan: (text: String, chains: Int, full: Bool)?
        if let old, let diff = ProxyRules.restoreText(from: old, to: desired) {
            plan = (diff.text, diff.chains, false)
        } else if old != nil {
            return nil // nothing changed
        }
        let started = Date()
        do {
            if plan == nil || plan!.chains > Self.fullRestoreChains {
                // A fresh node (empty tables), an unknown one (flushed, or a restore that
                // failed), or a big change: both tables whole, keeping what is not ours.
                let current = isFresh ? nil : try run([save, "-t", "nat"], in: node) + run([save, "-t", "filter"], in: node)
                plan = (ProxyRules.fullRestoreText(desired, current: current), desired.chainCount, true)
            }
            _ = try run([restore, "-w", "5"] + (plan!.full ? [] : ["--noflush"]), in: node, input: plan!.text)
        } catch {
            lock.lock()
            applied[name] = nil
            fresh.remove(name)
            lock.unlock()
            return record(name, error: "\(error)")
        }
        let ms = Date().timeIntervalSince(started) * 1000
        lock.lock()
        applied[name] = desired
        fresh.remove(name)
        var st = status[name] ?? ProxyNodeStatus(node: name)
        st.syncs += 1
        st.lastSync = Date()
        st.lastSyncMillis = (ms * 10).rounded() / 10
        st.lastChangedChains = plan!.chains
        st.lastFull = plan!.full
        st.rules = desired.ruleCount
        st.chains = desired.chainCount
        st.lastError = nil
        if repairing { st.repairs += 1 }
        status[name] = st
        lock.unlock()
        return nil
    }

    private func record(_ node: String, error: String) -> String {
        lock.lock()
        status[node, default: ProxyNodeStatus(node: node)].lastError = error
        lock.unlock()
        return "\(node): \(error)"
    }

    /// Whether the node's tables still hold our canary rule and POSTROUTING jump; a node
    /// that lost them is marked unknown, and the next sync rewrites it. Returns the nodes
    /// that need it.
    public func check() -> [String] {
        var broken: [String] = []
        for node in nodes {
            lock.lock()
            let known = applied[node.spec.name] != nil
            lock.unlock()
            guard known else { broken.append(node.spec.name); continue }
            let ok = [Ruleset.canary, Ruleset.postroutingJump].allSatisfy { r in
                (try? run([iptables, "-w", "5", "-t", r.table, "-C", r.chain] + Self.words(r.rule), in: node)) != nil
            }
            if !ok {
                lock.lock()
                applied[node.spec.name] = nil
                lock.unlock()
                broken.append(node.spec.name)
            }
        }
        return broken
    }

    /// A rule's words as iptables takes them on its command line (quotes removed).
    static func words(_ rule: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var quoted = false
        var any = false
        for ch in rule {
            if ch == "\"" { quoted.toggle(); any = true; continue }
            if ch == " " && !quoted {
                if any || !cur.isEmpty { out.append(cur) }
                cur = ""
                any = false
                continue
            }
            cur.append(ch)
        }
        if any || !cur.isEmpty { out.append(cur) }
        return out
    }

    /// Runs a command inside the node's network namespace; its output, or an error with it.
    @discardableResult
    func run(_ argv: [String], in node: NodeRuntime, input: String? = nil) throws(RuntimeError) -> String {
        let r = try Command.run(argv, joining: [node.netns.fd], input: input, timeout: 60)
        guard r.succeeded else {
            let what = argv.map { $0.split(separator: "/").last.map(String.init) ?? $0 }.prefix(3).joined(separator: " ")
            throw .state("\(what) in \(node.spec.name) failed (exit \(r.exitCode)\(r.timedOut ? ", timed out" : "")): \(r.output.trimmingCharacters(in: .whitespacesAndNewlines).prefix(600))")
        }
        return r.output
    }
}

/// What the network policies are enforced from: the policies, the running pods with
/// their addresses, and the namespaces' labels.
public struct PolicyInput: Sendable, Equatable {
    public var policies: [NetworkPolicySpec] = []
    public var pods: [PolicyPod] = []
    public var namespaceLabels: [String: [String: String]] = [:]

    public init(policies: [NetworkPolicySpec] = [], pods: [PolicyPod] = [], namespaceLabels: [String: [String: String]] = [:]) {
        self.policies = policies
        self.pods = pods
        self.namespaceLabels = namespaceLabels
    }
}

/// What several threads report, collected (the first error of parallel work...).
final class Collected<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [T] = []
    var items: [T] { lock.lock(); defer { lock.unlock() }; return list }
    var isEmpty: Bool { items.isEmpty }
    func append(_ item: T) {
        lock.lock()
        list.append(item)
        lock.unlock()
    }
}

extension Command {
    /// The full path of a program in the usual system directories.
    public static func which(_ name: String) -> String? {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"] where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }
}
