// Cluster DNS in a running cluster: the records of the Kubernetes DNS schema, computed
// from the spec and the endpoints as the proxy sees them, written to
// <state dir>/dns/zone (atomically: a new file renamed over the old one), which the
// kube-system/minik-dns pods have mounted at /etc/minik-dns and reload through inotify.
// The service loop calls publishDNS on every change, before it syncs the proxy.
import Foundation
import MinikDNS
import MinikSpec

extension ClusterRuntime {
    static func dnsInput(spec: ClusterSpec, services: [ServiceState], pods: [PodState]) -> ClusterRecords.Input {
        func ip(_ a: IPv4Address) -> IPv4 { IPv4(a.value) }
        func range(_ c: IPv4CIDR) -> IPv4Range { IPv4Range(network: ip(c.network), prefix: c.prefix) }
        let specPods = Dictionary(spec.pods.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let records: [ClusterRecords.Service] = services.map { st in
            let s = st.spec
            var seen = Set<IPv4Address>()
            let endpoints: [ClusterRecords.Endpoint] = st.endpoints.compactMap { e in
                guard seen.insert(e.ip).inserted else { return nil }
                // The endpoints controller sets a hostname when the pod's subdomain is the service.
                let p = specPods[e.pod]
                let hostname = p?.subdomain == s.name ? p?.hostname : nil
                return ClusterRecords.Endpoint(ip: ip(e.ip), hostname: hostname, ready: st.endpoints.contains { $0.ip == e.ip && $0.ready })
            }
            return ClusterRecords.Service(
                namespace: s.namespace, name: s.name, clusterIP: s.clusterIP.map(ip), headless: s.headless,
                externalName: s.type == .externalName ? s.externalName : nil,
                ports: s.ports.map { ClusterRecords.Port(name: $0.name, proto: $0.proto, port: $0.port) },
                endpoints: endpoints, publishNotReady: s.publishNotReadyAddresses)
        }
        return ClusterRecords.Input(
            domain: spec.dns.clusterDomain, ttl: UInt32(spec.dns.ttl),
            upstreams: spec.dns.upstreams.map { Upstream(ip: ip($0.ip), port: UInt16($0.port)) },
            serviceRange: range(spec.serviceSubnet), podRange: range(spec.podSubnet),
            apiServiceIP: ip(spec.serviceSubnet.address(1)), dnsServiceIP: spec.dnsServiceIP.map(ip),
            namespaces: spec.namespaces, services: records,
            pods: pods.compactMap { p in p.ip.map { ClusterRecords.Pod(namespace: p.namespace, name: p.name, ip: ip($0)) } })
    }

    /// Writes the zone when its records changed; the serial goes up with every change.
    /// Returns an error message, or nil.
    @discardableResult
    func publishDNS() -> String? {
        lock.lock()
        let spec = _spec, pods = self.pods
        let services = serviceStates()
        lock.unlock()
        guard spec.dns.enabled else { return nil }
        var file: ZoneFile
        do {
            file = try ClusterRecords.zoneFile(ClusterRuntime.dnsInput(spec: spec, services: services, pods: pods))
        } catch {
            return "dns: \(error.message)"
        }
        file.serial = 0
        let body = file.render()
        if body == dnsZoneBody { return nil }
        file.serial = dnsSerial + 1
        let dir = Naming.dnsDir(spec.name)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try file.render().write(toFile: "\(dir)/zone", atomically: true, encoding: .utf8)
        } catch {
            dnsStale = true
            return "dns: cannot write \(dir)/zone: \(error)"
        }
        dnsStale = false
        if file.skipped > 0 && file.skipped != dnsSkipped {
            FileHandle.standardError.write(Data("dns: \(file.skipped) records left out: their names are longer than 255 bytes\n".utf8))
        }
        dnsSkipped = file.skipped
        dnsSerial += 1
        dnsZoneBody = body
        return nil
    }
}
