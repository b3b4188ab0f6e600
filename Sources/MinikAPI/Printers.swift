// Tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns and
// cell formats of the apiserver's printers (pkg/printers/internalversion/printers.go):
// what `kubectl get` prints is rendered here, and kubectl only lays it out. Columns of
// priority 1 show with `-o wide`.
import Foundation

public enum Printers {
    struct Column {
        var name: String
        var type: String
        var priority: Int
        var description: String
        var format: String = ""
    }

    static func col(_ n: String, _ t: String = "string", wide: Bool = false, _ d: String, format: String = "") -> Column {
        Column(name: n, type: t, priority: wide ? 1 : 0, description: d, format: format)
    }

    static let nameColumn = col("Name", "string", "Name must be unique within a namespace.", format: "name")
    static let ageColumn = col("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.")

    static func columns(_ resource: String) -> [Column] {
        switch resource {
        case "pods":
            return [nameColumn, col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
                    col("Status", "string", "The aggregate status of the containers in this pod."),
                    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                    ageColumn, col("IP", wide: true, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
                    col("Node", wide: true, "NodeName is a request to schedule this pod onto a specific node."),
                    col("Nominated Node", wide: true, "nominatedNodeName is set only when this pod preempts other pods on the node."),
                    col("Readiness Gates", wide: true, "If specified, all readiness gates will be evaluated for pod readiness.")]
        case "nodes":
            return [nameColumn, col("Status", "string", "The status of the node"), col("Roles", "string", "The roles of the node"), ageColumn,
                    col("Version", "string", "Kubelet Version reported by the node."),
                    col("Internal-IP", wide: true, "List of addresses reachable to the node"),
                    col("External-IP", wide: true, "List of addresses reachable to the node"),
                    col("OS-Image", wide: true, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
                    col("Kernel-Version", wide: true, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
                    col("Container-Runtime", wide: true, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).")]
        case "services":
            return [nameColumn, col("Type", "string", "type determines how the Service is exposed."),
                    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
                    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                    col("Port(s)", "string", "The list of ports that are exposed by this service."), ageColumn,
                    col("Selector", wide: true, "Route service traffic to pods with label keys and values matching this selector.")]
        case "endpoints":
            return [nameColumn, col("Endpoints", "string", "Endpoints is the list of endpoints in this Endpoints object."), ageColumn]
        case "endpointslices":
            return [nameColumn, col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice."),
                    col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
                    col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."), ageColumn]
        case "deployments":
            return [nameColumn, col("Ready", "string", "Number of the pod with ready state"),
                    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                    col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                    ageColumn, col("Containers", wide: true, "Names of each container in the template."),
                    col("Images", wide: true, "Images referenced by each container in the template."),
                    col("Selector", wide: true, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.")]
        case "replicasets":
            return [nameColumn, col("Desired", "integer", "Replicas is the number of desired replicas."),
                    col("Current", "integer", "Replicas is the most recently observed number of replicas."),
                    col("Ready", "integer", "The number of ready replicas for this replica set."), ageColumn,
                    col("Containers", wide: true, "Names of each container in the template."),
                    col("Images", wide: true, "Images referenced by each container in the template."),
                    col("Selector", wide: true, "Selector is a label query over pods that should match the replica count.")]
        case "namespaces":
            return [nameColumn, col("Status", "string", "The status of the namespace"), ageColumn]
        case "events":
            return [col("Last Seen", "string", "Time when this Event was last observed."), col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future."),
                    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for this event being generated."),
                    col("Object", "string", "The object that this event is about."),
                    col("Subobject", wide: true, "The subobject that this event is about."),
                    col("Source", wide: true, "The component reporting this event. Should be a short machine understandable string."),
                    col("Message", "string", "A human-readable description of the status of this operation."),
                    col("First Seen", wide: true, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
                    col("Count", "integer", wide: true, "The number of times this event has occurred."),
                    col("Name", "string", wide: true, "Name must be unique within a namespace.", format: "name")]
        case "configmaps":
            return [nameColumn, col("Data", "integer", "Data contains the configuration data."), ageColumn]
        case "networkpolicies":
            return [nameColumn, col("Pod-Selector", "string", "podSelector selects the pods to which this NetworkPolicy object applies."), ageColumn]
        default:
            return [nameColumn, ageColumn]
        }
    }

    /// includeObject: None, Metadata (the default) or Object.
    public static func table(_ resource: String, objects: [JSON], revision: Int64?, now: Date, includeObject: String = "Metadata",
                             withColumns: Bool = true, continueToken: String? = nil, remaining: Int? = nil) -> JSON {
        var meta: JSON = [:]
        if let revision { meta["resourceVersion"] = .string(String(revision)) }
        if let continueToken { meta["continue"] = .string(continueToken) }
        if let remaining { meta["remainingItemCount"] = .int(Int64(remaining)) }
        var t: JSON = ["kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                       "rows": .array(objects.map { row(resource, $0, now: now, includeObject: includeObject) })]
        t["columnDefinitions"] = withColumns ? .array(columns(resource).map { c in
            ["name": .string(c.name), "type": .string(c.type), "format": .string(c.format), "description": .string(c.description), "priority": .int(Int64(c.priority))]
        }) : []
        return t
    }

    static func row(_ resource: String, _ o: JSON, now: Date, includeObject: String) -> JSON {
        var r: JSON = ["cells": .array(cells(resource, o, now: now))]
        switch includeObject {
        case "None": break
        case "Object": r["object"] = o
        default:
            r["object"] = ["kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"] ?? [:]]
        }
        return r
    }

    public static func age(_ text: String?, now: Date) -> String {
        guard let text, let t = parseRFC3339(text) else { return "<unknown>" }
        return humanDuration(now.timeIntervalSince(t))
    }

    /// apimachinery's duration.HumanDuration.
    public static func humanDuration(_ d: TimeInterval) -> String {
        let seconds = Int(d.rounded(.towardZero))
        if seconds < -1 { return "<invalid>" }
        if seconds < 0 { return "0s" }
        if seconds < 120 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 {
            let s = seconds % 60
            return s == 0 ? "\(minutes)m" : "\(minutes)m\(s)s"
        }
        if minutes < 180 { return "\(minutes)m" }
        let hours = seconds / 3600
        if hours < 8 {
            let m = minutes % 60
            return m == 0 ? "\(hours)h" : "\(hours)h\(m)m"
        }
        if hours < 48 { return "\(hours)h" }
        if hours < 24 * 8 {
            let h = hours % 24
            return h == 0 ? "\(hours / 24)d" : "\(hours / 24)d\(h)h"
        }
        if hours < 24 * 365 * 2 { return "\(hours / 24)d" }
        if hours < 24 * 365 * 8 {
            let dy = (hours / 24) % 365
            return dy == 0 ? "\(hours / 24 / 365)y" : "\(hours / 24 / 365)y\(dy)d"
        }
        return "\(hours / 24 / 365)y"
    }

    static func s(_ v: String) -> JSON { .string(v) }

    static func selectorText(_ m: [String: String]?) -> String {
        guard let m, !m.isEmpty else { return "<none>" }
        return m.keys.sorted().map { "\($0)=\(m[$0]!)" }.joined(separator: ",")
    }

    static func labelSelectorText(_ sel: JSON?) -> String {
        var parts: [String] = []
        if let ml = sel?["matchLabels"]?.stringMap { parts += ml.keys.sorted().map { "\($0)=\(ml[$0]!)" } }
        for e in sel?["matchExpressions"]?.array ?? [] {
            let k = e["key"]?.string ?? "", op = e["operator"]?.string ?? ""
            let vs = (e["values"]?.array ?? []).compactMap(\.string).sorted().joined(separator: ",")
            switch op {
            case "In": parts.append("\(k) in (\(vs))")
            case "NotIn": parts.append("\(k) notin (\(vs))")
            case "Exists": parts.append(k)
            default: parts.append("!\(k)")
            }
        }
        return parts.isEmpty ? "<none>" : parts.joined(separator: ",")
    }

    static func cells(_ resource: String, _ o: JSON, now: Date) -> [JSON] {
        let name = s(o["metadata"]?["name"]?.string ?? "")
        let age = s(Printers.age(o["metadata"]?["creationTimestamp"]?.string, now: now))
        switch resource {
        case "pods": return podCells(o, now: now)
        case "nodes":
            let conds = o["status"]?["conditions"]?.array ?? []
            let ready = conds.first { $0["type"]?.string == "Ready" }
            var status = ready == nil ? "Unknown" : ready?["status"]?.string == "True" ? "Ready" : "NotReady"
            if o["spec"]?["unschedulable"]?.bool == true { status += ",SchedulingDisabled" }
            let nodeLabels = o["metadata"]?["labels"]?.stringMap ?? [:]
            var roleSet = Set(nodeLabels.keys.filter { $0.hasPrefix("node-role.kubernetes.io/") }
                .map { String($0.dropFirst("node-role.kubernetes.io/".count)) }.filter { !$0.isEmpty })
            if let role = nodeLabels["kubernetes.io/role"], !role.isEmpty { roleSet.insert(role) }
            let roles = roleSet.sorted()
            let addresses = o["status"]?["addresses"]?.array ?? []
            func address(_ type: String) -> String { addresses.first { $0["type"]?.string == type }?["address"]?.string ?? "<none>" }
            let info = o["status"]?["nodeInfo"]
            func i(_ k: String) -> String { info?[k]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? "<unknown>" }
            return [name, s(status), s(roles.isEmpty ? "<none>" : roles.joined(separator: ",")), age, s(info?["kubeletVersion"]?.string ?? ""),
                    s(address("InternalIP")), s(address("ExternalIP")), s(i("osImage")), s(i("kernelVersion")), s(i("containerRuntimeVersion"))]
        case "services":
            let spec = o["spec"]
            let type = spec?["type"]?.string ?? "ClusterIP"
            let clusterIP = spec?["clusterIP"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? "<none>"
            let externalIPs = (spec?["externalIPs"]?.array ?? []).compactMap(\.string)
            var external: String
            switch type {
            case "ClusterIP", "NodePort": external = externalIPs.isEmpty ? "<none>" : externalIPs.joined(separator: ",")
            case "LoadBalancer":
                let ingress = (o["status"]?["loadBalancer"]?["ingress"]?.array ?? []).compactMap { $0["ip"]?.string ?? $0["hostname"]?.string }
                let all = ingress + externalIPs
                external = all.isEmpty ? "<pending>" : all.joined(separator: ",")
            case "ExternalName": external = spec?["externalName"]?.string ?? "<none>"
            default: external = "<unknown>"
            }
            let ports = (spec?["ports"]?.array ?? []).map { p -> String in
                let port = p["port"]?.int ?? 0, proto = p["protocol"]?.string ?? "TCP"
                if let np = p["nodePort"]?.int, np > 0 { return "\(port):\(np)/\(proto)" }
                return "\(port)/\(proto)"
            }
            return [name, s(type), s(clusterIP), s(external), s(ports.isEmpty ? "<none>" : ports.joined(separator: ",")), age,
                    s(selectorText(spec?["selector"]?.stringMap))]
        case "endpoints":
            return [name, s(endpointsText(o)), age]
        case "endpointslices":
            let ports = (o["ports"]?.array ?? []).compactMap { $0["port"]?.int }.map(String.init)
            var addrs: [String] = []
            var count = 0
            for e in o["endpoints"]?.array ?? [] {
                for a in (e["addresses"]?.array ?? []).compactMap(\.string) {
                    count += 1
                    if addrs.count < 3 { addrs.append(a) }
                }
            }
            var eps = addrs.isEmpty ? "<unset>" : addrs.joined(separator: ",")
            if count > 3 { eps += " + \(count - 3) more..." }
            return [name, s(o["addressType"]?.string ?? ""), s(ports.isEmpty ? "<unset>" : ports.joined(separator: ",")), s(eps), age]
        case "deployments", "replicasets":
            let spec = o["spec"], st = o["status"]
            let desired = spec?["replicas"]?.int ?? 1
            let containers = spec?["template"]?["spec"]?["containers"]?.array ?? []
            let names = containers.compactMap { $0["name"]?.string }.joined(separator: ",")
            let images = containers.compactMap { $0["image"]?.string }.joined(separator: ",")
            let sel = labelSelectorText(spec?["selector"])
            func n(_ k: String) -> Int64 { st?[k]?.int ?? 0 }
            if resource == "deployments" {
                return [name, s("\(n("readyReplicas"))/\(desired)"), .int(n("updatedReplicas")), .int(n("availableReplicas")), age, s(names), s(images), s(sel)]
            }
            return [name, .int(desired), .int(n("replicas")), .int(n("readyReplicas")), age, s(names), s(images), s(sel)]
        case "namespaces":
            return [name, s(o["status"]?["phase"]?.string ?? ""), age]
        case "events":
            var first = Printers.age(o["firstTimestamp"]?.string, now: now)
            if o["firstTimestamp"]?.string == nil { first = Printers.age(o["eventTime"]?.string, now: now) }
            let last = o["lastTimestamp"]?.string == nil ? first : Printers.age(o["lastTimestamp"]?.string, now: now)
            let count = max(o["count"]?.int ?? 1, 1)
            let inv = o["involvedObject"]
            let target = "\((inv?["kind"]?.string ?? "").lowercased())/\(inv?["name"]?.string ?? "")"
            var source = o["source"]?["component"]?.string ?? o["reportingComponent"]?.string ?? ""
            if let h = o["source"]?["host"]?.string, !h.isEmpty { source += ", \(h)" }
            return [s(last), s(o["type"]?.string ?? ""), s(o["reason"]?.string ?? ""), s(target), s(inv?["fieldPath"]?.string ?? ""),
                    s(source), s((o["message"]?.string ?? "").trimmingCharacters(in: .whitespacesAndNewlines)), s(first), .int(count), name]
        case "configmaps":
            return [name, .int(Int64((o["data"]?.object?.count ?? 0) + (o["binaryData"]?.object?.count ?? 0))), age]
        case "networkpolicies":
            return [name, s(labelSelectorText(o["spec"]?["podSelector"])), age]
        default:
            return [name, age]
        }
    }

    static func endpointsText(_ o: JSON) -> String {
        guard let subsets = o["subsets"]?.array, !subsets.isEmpty else { return "<none>" }
        var list: [String] = []
        var count = 0
        var more = false
        for ss in subsets {
            let addrs = (ss["addresses"]?.array ?? []).compactMap { $0["ip"]?.string }
            let ports = ss["ports"]?.array ?? []
            if ports.isEmpty {
                count += addrs.count
                for a in addrs { if list.count == 3 { more = true; continue }; list.append(a) }
            } else {
                for p in ports {
                    count += addrs.count
                    for a in addrs {
                        if list.count == 3 { more = true; continue }
                        list.append("\(a):\(p["port"]?.int ?? 0)")
                    }
                }
            }
        }
        let ret = list.joined(separator: ",")
        return more ? "\(ret) + \(count - 3) more..." : ret
    }

    /// printPod: READY, the STATUS reason as kubectl derives it, RESTARTS with the time of
    /// the last one, and the wide columns.
    static func podCells(_ o: JSON, now: Date) -> [JSON] {
        let st = o["status"]
        let containers = st?["containerStatuses"]?.array ?? []
        let total = o["spec"]?["containers"]?.array?.count ?? containers.count
        var restarts: Int64 = 0
        var ready = 0
        var lastRestart: Date?
        var reason = st?["reason"]?.string ?? st?["phase"]?.string ?? "Unknown"
        func noteRestart(_ c: JSON) {
            restarts += c["restartCount"]?.int ?? 0
            if let f = c["lastState"]?["terminated"]?["finishedAt"]?.string, let d = parseRFC3339(f), lastRestart.map({ d > $0 }) ?? true { lastRestart = d }
        }
        var initializing = false
        let inits = st?["initContainerStatuses"]?.array ?? []
        for (i, c) in inits.enumerated() {
            noteRestart(c)
            if let t = c["state"]?["terminated"], t["exitCode"]?.int == 0 { continue }
            if let t = c["state"]?["terminated"] {
                if let r = t["reason"]?.string, !r.isEmpty { reason = "Init:" + r }
                else if let sig = t["signal"]?.int, sig != 0 { reason = "Init:Signal:\(sig)" }
                else { reason = "Init:ExitCode:\(t["exitCode"]?.int ?? 0)" }
            } else if let r = c["state"]?["waiting"]?["reason"]?.string, !r.isEmpty, r != "PodInitializing" {
                reason = "Init:" + r
            } else {
                reason = "Init:\(i)/\(inits.count)"
            }
            initializing = true
            break
        }
        if !initializing {
            restarts = 0
            lastRestart = nil
            var hasRunning = false
            for c in containers.reversed() {
                noteRestart(c)
                if let r = c["state"]?["waiting"]?["reason"]?.string, !r.isEmpty {
                    reason = r
                } else if let t = c["state"]?["terminated"] {
                    if let r = t["reason"]?.string, !r.isEmpty { reason = r }
                    else if let sig = t["signal"]?.int, sig != 0 { reason = "Signal:\(sig)" }
                    else { reason = "ExitCode:\(t["exitCode"]?.int ?? 0)" }
                } else if c["ready"]?.bool == true && c["state"]?["running"] != nil {
                    hasRunning = true
                    ready += 1
                }
            }
            if reason == "Completed" && hasRunning {
                let podReady = (st?["conditions"]?.array ?? []).contains { $0["type"]?.string == "Ready" && $0["status"]?.string == "True" }
                reason = podReady ? "Running" : "NotReady"
            }
        }
        let phase = st?["phase"]?.string
        if o["metadata"]?["deletionTimestamp"] != nil && phase != "Succeeded" && phase != "Failed" { reason = "Terminating" }
        var restartText = String(restarts)
        if let lastRestart { restartText = "\(restarts) (\(humanDuration(now.timeIntervalSince(lastRestart))) ago)" }
        let ip = st?["podIP"]?.string ?? "<none>"
        let node = o["spec"]?["nodeName"]?.string ?? "<none>"
        return [s(o["metadata"]?["name"]?.string ?? ""), s("\(ready)/\(total)"), s(reason), s(restartText),
                s(age(o["metadata"]?["creationTimestamp"]?.string, now: now)), s(ip), s(node), s("<none>"), s("<none>")]
    }
}
