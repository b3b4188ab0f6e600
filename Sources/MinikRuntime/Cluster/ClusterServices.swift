// Services in a running cluster: the proxy loop (endpoints recomputed and every node's
// rules synced whenever a pod, its readiness or a service changes; a check for flushed
// tables every few seconds), the external host on the underlay, and the published
// extraPortMappings.
import Foundation
import MinikNetlink
import MinikSpec

extension ClusterRuntime {
    /// Something that services depend on changed: sync soon (bursts are batched).
    func proxyDirty() {
        markStateDirty()
        proxyWake.lock()
        proxyPending = true
        proxyWake.signal()
        proxyWake.unlock()
    }

    /// Services with their endpoints as of now.
    public func serviceStates() -> [ServiceState] { servicesSnapshot().services }

    /// The spec, the pods and the services' endpoints at one moment: what the proxy rules
    /// and the DNS zone are both made from (computed once per sync of the loop).
    struct ServicesSnapshot {
        var spec: ClusterSpec
        var pods: [PodState]
        var services: [ServiceState]
    }

    func servicesSnapshot() -> ServicesSnapshot {
        lock.lock()
        defer { lock.unlock() }
        let byKey = Dictionary(pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let index = EndpointsController.SelectorIndex(_spec.pods)
        let services = _spec.services.map { s in
            ServiceState(spec: s, endpoints: EndpointsController.endpoints(of: s, spec: _spec, pods: byKey, index: index),
                         createdAt: serviceCreated[s.key] ?? createdAt)
        }
        return ServicesSnapshot(spec: _spec, pods: pods, services: services)
    }

    /// One sync of every node, now (from `services`, or the current ones). Returns the errors.
    @discardableResult
    func syncServices(_ services: [ServiceState]? = nil) -> [String] {
        guard let proxy else { return [] }
        let errors = proxy.sync(EndpointsController.proxyPorts(services ?? serviceStates()), policies: policyInput())
        for e in errors { FileHandle.standardError.write(Data("proxy: \(e)\n".utf8)) }
        return errors
    }

    /// What the nodes enforce network policies from: the policies, the pods that have an
    /// address (their current labels, their containers' named ports) and the namespaces' labels.
    func policyInput() -> PolicyInput {
        lock.lock()
        defer { lock.unlock() }
        guard !_spec.networkPolicies.isEmpty else { return PolicyInput() }
        let specs = Dictionary(_spec.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let running = pods.compactMap { p -> PolicyPod? in
            guard let ip = p.ip, p.phase == .running || p.phase == .pending else { return nil }
            var ports: [String: Int] = [:]
            for c in specs[p.key]?.containers ?? [] {
                for port in c.ports { if let n = port.name, ports["\(n)/\(port.proto)"] == nil { ports["\(n)/\(port.proto)"] = port.containerPort } }
            }
            return PolicyPod(namespace: p.namespace, name: p.name, labels: p.labels, ip: ip, node: p.node, namedPorts: ports)
        }
        return PolicyInput(policies: _spec.networkPolicies, pods: running, namespaceLabels: _spec.namespaceLabels)
    }

    /// The services loop: publishes the DNS zone and syncs the proxy when something changed (after a 20 ms pause that batches
    /// bursts, like kube-proxy's minSyncPeriod), and checks the nodes' tables every
    /// ServiceProxy.checkInterval seconds, re-syncing a node whose rules were flushed.
    func startProxyLoop() {
        guard proxy != nil || spec.dns.enabled else { return }
        let t = Thread { [self] in
            var lastCheck = Date()
            while true {
                proxyWake.lock()
                if !proxyPending && !stopping { _ = proxyWake.wait(until: lastCheck.addingTimeInterval(ServiceProxy.checkInterval)) }
                let pending = proxyPending
                proxyPending = false
                let stop = stopping
                proxyWake.unlock()
                if stop { return }
                if pending {
                    usleep(20_000)
                    proxyWake.lock()
                    proxyPending = false
                    proxyWake.unlock()
                    let snapshot = servicesSnapshot()
                    if let e = publishDNS(snapshot) { FileHandle.standardError.write(Data("\(e)\n".utf8)) }
                    syncServices(snapshot.services)
                }
                if dnsStale, Date().timeIntervalSince(lastCheck) >= ServiceProxy.checkInterval {
                    publishDNS() // a zone that could not be written is tried again
                }
                if Date().timeIntervalSince(lastCheck) >= ServiceProxy.checkInterval {
                    lastCheck = Date()
                    if let broken = proxy?.check(), !broken.isEmpty {
                        FileHandle.standardError.write(Data("proxy: rules missing in \(broken.joined(separator: ", ")); restoring them\n".utf8))
                        syncServices()
                    }
                }
            }
        }
        t.name = "proxy"
        t.start()
    }

    /// The external host: a namespace on the underlay that is not a node, with routes to
    /// the services' externalIPs through the first node (as a router would have).
    func addExternalHost() throws(RuntimeError) {
        guard let underlay else { return }
        let ns = try NetNamespace.create(Naming.externalNetns(spec.name))
        external = ns
        let subnet = spec.network.underlaySubnet
        let port = Naming.externalPort(spec.name)
        let usock = try underlay.netlink
        try nl("\(underlay.name): \(port)") { () throws(NetlinkError) in
            try usock.linkAdd(LinkSpec(name: port, kind: .veth(peer: VethPeer(name: "eth0", namespaceFD: ns.fd, mtu: spec.network.mtu)),
                                       mtu: spec.network.underlayMTU, masterIndex: underlayBridge, up: true))
        }
        let sock = try ns.netlink
        externalUplink = try nl("\(ns.name): eth0") { () throws(NetlinkError) -> Int32 in
            try sock.linkSetUp(index: 1)
            guard let eth0 = try sock.linkGet(name: "eth0") else { throw NetlinkError("ip link show eth0", errno: ENODEV) }
            try sock.linkSetUp(index: eth0.index)
            try sock.addrAdd(index: eth0.index, address: Naming.externalHostIP(subnet).networkOrder, prefix: subnet.prefix)
            return eth0.index
        }
        try routeExternalIPs(from: [], to: spec.services)
    }

    /// Routes in the external host for externalIPs that appeared, removed for those gone.
    func routeExternalIPs(from old: [ServiceSpec], to new: [ServiceSpec]) throws(RuntimeError) {
        guard let external, let gateway = spec.nodes.first?.internalIP else { return }
        let before = Set(old.flatMap(\.externalIPs)), after = Set(new.flatMap(\.externalIPs))
        let sock = try external.netlink
        for ip in after.subtracting(before).sorted() {
            try nl("\(external.name): route to \(ip)") { () throws(NetlinkError) in
                try sock.routeReplace(RouteSpec(destination: ip.networkOrder, prefix: 32, gateway: gateway.networkOrder, outputIndex: externalUplink))
            }
        }
        for ip in before.subtracting(after).sorted() {
            try? sock.routeDel(RouteSpec(destination: ip.networkOrder, prefix: 32, gateway: gateway.networkOrder, outputIndex: externalUplink))
        }
    }

    /// kind's extraPortMappings: 127.0.0.1:hostPort on this machine to the node's port.
    func publishPorts() throws(RuntimeError) {
        guard let underlay else { return }
        for n in spec.nodes {
            for m in n.extraPortMappings {
                let f = PortForwarder(hostPort: m.hostPort, proto: m.proto, targetIP: n.internalIP, targetPort: m.containerPort, underlay: underlay)
                try f.start()
                forwarders.append(f)
            }
        }
    }

    func stopServices() {
        proxyWake.lock()
        proxyWake.signal()
        proxyWake.unlock()
        for f in forwarders { f.stop() }
        forwarders = []
    }

    /// Services of `desired` that differ from the running ones: report lines, and the
    /// creation times of new ones.
    func reconcileServices(_ desired: ClusterSpec, current: ClusterSpec) -> [String] {
        var report: [String] = []
        let before = Dictionary(current.services.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Set(desired.services.map(\.key))
        for s in desired.services {
            if let old = before[s.key] {
                if !old.sameAs(s) { report.append("service/\(s.name) configured") }
            } else {
                serviceCreated[s.key] = Date()
                report.append("service/\(s.name) created")
            }
        }
        for s in current.services where !after.contains(s.key) {
            serviceCreated.removeValue(forKey: s.key)
            report.append("service/\(s.name) deleted")
        }
        do { try routeExternalIPs(from: current.services, to: desired.services) } catch { report.append("error: \(error)") }
        let policies = Dictionary(current.networkPolicies.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for p in desired.networkPolicies {
            if let old = policies[p.key] {
                if !old.sameAs(p) { report.append("networkpolicy.networking.k8s.io/\(p.name) configured") }
            } else {
                report.append("networkpolicy.networking.k8s.io/\(p.name) created")
            }
        }
        let kept = Set(desired.networkPolicies.map(\.key))
        for p in current.networkPolicies where !kept.contains(p.key) { report.append("networkpolicy.networking.k8s.io/\(p.name) deleted") }
        return report
    }
}
