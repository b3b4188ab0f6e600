// The pods/ephemeralcontainers subresource (`kubectl debug`), validated as the
// apiserver's ValidatePodEphemeralContainersUpdate: existing ephemeral containers stay
// as they are, new names are unique in the pod, a target names one of its containers,
// and what an ephemeral container cannot have (ports, probes, lifecycle, resources) is
// refused. The new ones are then added to the running pod and started (the runtime's
// addEphemeralContainers); the pod is not recreated.
import Foundation
import MinikAPI
import MinikRuntime
import MinikSpec

extension ClusterAPI {
    public func setEphemeralContainers(namespace: String, pod: String, _ list: JSON) throws(APIError) {
        updates.lock()
        defer { updates.unlock() }
        let key = "\(namespace)/\(pod)"
        guard let p = runtime.spec.pods.first(where: { $0.key == key }) else { throw APIError.notFound("pods", pod) }
        var causes: [(field: String, message: String)] = []
        guard case .array(let items) = list else {
            throw invalidPod(pod, [("spec.ephemeralContainers", "Invalid value: must be a list")])
        }
        var wanted: [ContainerSpec] = []
        let others = Set((p.containers + p.initContainers).map(\.name))
        var seen: Set<String> = []
        for (i, item) in items.enumerated() {
            let at = "spec.ephemeralContainers[\(i)]"
            guard case .object = item else { causes.append((at, "Invalid value: must be an object")); continue }
            guard let name = item["name"]?.string, !name.isEmpty else { causes.append(("\(at).name", "Required value")); continue }
            if !DNS.isLabel(name) { causes.append(("\(at).name", "Invalid value: \"\(name)\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")) }
            if others.contains(name) || seen.contains(name) { causes.append(("\(at).name", "Duplicate value: \"\(name)\"")) }
            seen.insert(name)
            guard let image = item["image"]?.string, !image.isEmpty else { causes.append(("\(at).image", "Required value")); continue }
            for field in ["ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"] where item[field] != nil && item[field] != .null {
                causes.append(("\(at).\(field)", "Forbidden: cannot be set for an Ephemeral Container"))
            }
            if let res = item["resources"], case .object(let r) = res, !r.isEmpty {
                causes.append(("\(at).resources", "Forbidden: cannot be set for an Ephemeral Container"))
            }
            var c = ContainerSpec(name: name, image: image, command: strings(item["command"]), args: strings(item["args"]),
                                  env: [], ports: [], workingDir: item["workingDir"]?.string,
                                  source: SourceLocation(file: "pod/\(pod)", line: 0, column: 0, field: at))
            if case .array(let env)? = item["env"] {
                for (k, e) in env.enumerated() {
                    guard let n = e["name"]?.string, !n.isEmpty else { causes.append(("\(at).env[\(k)].name", "Required value")); continue }
                    c.env.append(EnvVar(name: n, value: e["value"]?.string ?? ""))
                }
            }
            c.stdin = item["stdin"]?.bool ?? false
            c.stdinOnce = item["stdinOnce"]?.bool ?? false
            c.tty = item["tty"]?.bool ?? false
            c.privileged = item["securityContext"]?["privileged"]?.bool ?? false
            for (field, list) in [("add", item["securityContext"]?["capabilities"]?["add"]), ("drop", item["securityContext"]?["capabilities"]?["drop"])] {
                for cap in strings(list) {
                    guard let n = Capabilities.normalize(cap) else {
                        causes.append(("\(at).securityContext.capabilities.\(field)", "Unsupported value: \"\(cap)\""))
                        continue
                    }
                    if field == "add" { c.capabilitiesAdd.append(n) } else { c.capabilitiesDrop.append(n) }
                }
            }
            if let t = item["targetContainerName"]?.string, !t.isEmpty {
                if !others.contains(t) { causes.append(("\(at).targetContainerName", "Not found: \"\(t)\"")) }
                c.targetContainerName = t
            }
            wanted.append(c)
        }
        // Existing ones may not change nor go (their source is not part of them).
        for (i, old) in p.ephemeralContainers.enumerated() {
            guard let now = wanted.first(where: { $0.name == old.name }) else {
                causes.append(("spec.ephemeralContainers", "Forbidden: existing ephemeral containers \"\(old.name)\" may not be removed"))
                continue
            }
            var a = old, b = now
            a.source = nil
            b.source = nil
            if a != b { causes.append(("spec.ephemeralContainers[\(i)]", "Forbidden: existing ephemeral containers \"\(old.name)\" may not be changed")) }
        }
        if !causes.isEmpty { throw invalidPod(pod, causes) }
        let added = wanted.filter { w in !p.ephemeralContainers.contains { $0.name == w.name } }
        guard !added.isEmpty else { return }
        var probe = runtime.spec
        probe.deployments = []
        var shell = p
        shell.containers = added
        shell.initContainers = []
        probe.pods = [shell]
        let problems = ImageStore.located().problems(in: probe)
        if !problems.isEmpty { throw APIError(422, "Invalid", SpecError(problems).description) }
        do { try runtime.addEphemeralContainers(pod: key, added) } catch {
            throw APIError(400, "BadRequest", "cannot add ephemeral containers to pod \(pod): \(error)")
        }
    }

    func strings(_ j: JSON?) -> [String] {
        guard case .array(let items)? = j else { return [] }
        return items.compactMap(\.string)
    }

    func invalidPod(_ name: String, _ causes: [(field: String, message: String)]) -> APIError {
        APIError(422, "Invalid", "Pod \"\(name)\" is invalid: " + causes.map { "\($0.field): \($0.message)" }.joined(separator: ", "),
                 details: ["name": .string(name), "group": "", "kind": "Pod",
                           "causes": .array(causes.map { ["reason": "FieldValueInvalid", "message": .string($0.message), "field": .string($0.field)] })])
    }
}
