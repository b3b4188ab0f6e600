// A pod's securityContext: the namespaced kernel settings it may change. A container's
// /proc/sys is read-only (Docker's default), so a pod that needs, say, a wider local port
// range asks for it in spec.securityContext.sysctls and the runtime writes it into the
// pod's own network (or IPC) namespace before any container starts, as kubelet and the
// container runtime do. Only Kubernetes' safe set is accepted (kubelet's
// pkg/kubelet/sysctl/safe_sysctls.go, v1.32): namespaced settings that cannot affect
// other pods or the node. The other securityContext fields are accepted with a warning.
import MinikAddressing

/// One entry of spec.securityContext.sysctls.
public struct Sysctl: Codable, Sendable, Equatable {
    /// Dotted name ("net.ipv4.ip_local_port_range"); a slashed name is stored dotted.
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Its file under /proc/sys.
    public var procPath: String { "/proc/sys/" + name.replacingAll(".", with: "/") }

    /// Which namespace of the pod holds it: "net" or "ipc".
    public var namespace: String { name.hasPrefix("kernel.") ? "ipc" : "net" }

    /// Kubernetes' safe sysctls: namespaced, and harmless to other pods and the node.
    public static let safe: [String] = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    ]
}

extension String {
    func replacingAll(_ a: Character, with b: Character) -> String { String(map { $0 == a ? b : $0 }) }
}

extension Builder {
    /// spec.securityContext of a pod: its sysctls, checked against the safe set.
    func podSecurityContext(_ y: YNode?) -> [Sysctl] {
        guard let y else { return [] }
        let later = "not implemented by minik yet"
        guard let f = r.mapping(y, "pod securityContext", known: ["sysctls"], ignored: [
            "runAsUser": later, "runAsGroup": later, "runAsNonRoot": later, "fsGroup": later,
            "fsGroupChangePolicy": later, "supplementalGroups": later, "supplementalGroupsPolicy": later,
            "seccompProfile": "every container gets minik's RuntimeDefault-like profile",
            "appArmorProfile": later, "seLinuxOptions": later, "seLinuxChangePolicy": later, "windowsOptions": later,
        ]) else { return [] }
        var out: [Sysctl] = []
        var seen: Set<String> = []
        for item in r.sequence(f["sysctls"]) ?? [] {
            guard let sf = r.mapping(item, "a sysctl", known: ["name", "value"]) else { continue }
            guard let ny = sf["name"], let raw = r.string(ny) else {
                r.fail(item, "a sysctl needs a name")
                continue
            }
            // Kubernetes accepts "net/ipv4/x" as well as "net.ipv4.x".
            let name = raw.contains("/") ? raw.replacingAll("/", with: ".") : raw
            guard Sysctl.safe.contains(name) else {
                r.fail(ny, "sysctl \"\(raw)\" is not allowed: a pod may set only Kubernetes' safe sysctls (\(Sysctl.safe.joined(separator: ", ")))")
                continue
            }
            if !seen.insert(name).inserted { r.fail(ny, "sysctl \(name) is given twice") }
            guard let vy = sf["value"], let value = r.string(vy) else {
                r.fail(sf["name"], "sysctl \(name) needs a value")
                continue
            }
            if value.isEmpty || value.utf8.contains(where: { $0 < 0x20 && $0 != 0x09 }) {
                r.fail(vy, "sysctl \(name): the value must be a non-empty line of text")
                continue
            }
            out.append(Sysctl(name: name, value: value))
        }
        return out
    }
}
