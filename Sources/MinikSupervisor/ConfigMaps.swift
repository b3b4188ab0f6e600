// ConfigMaps: objects only the API has (no pod mounts them yet). The backend validates
// them as the apiserver does (pkg/apis/core/validation ValidateConfigMap: the name a DNS
// subdomain, keys of [-._a-zA-Z0-9] of at most 253 characters, no key in both data and
// binaryData, at most 1 MiB in all, immutable ones unchangeable) and keeps them as JSON in
// the runtime, which saves them with the state. Every namespace has kube-root-ca.crt with
// the cluster's CA, as the root-ca-cert-publisher makes it.
import Foundation
import MinikAPI
import MinikRuntime
import MinikSpec

extension ClusterAPI {
    static let configMapFields: Set<String> = ["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"]
    static let rootCAName = "kube-root-ca.crt"

    func configMapKey(_ namespace: String, _ name: String) -> String { "configmaps/\(namespace)/\(name)" }

    /// Creates or replaces a ConfigMap after the apiserver's checks.
    func writeConfigMap(_ object: JSON, create: Bool, strict: Bool) throws(APIError) -> [String] {
        let name = object["metadata"]?["name"]?.string ?? ""
        let ns = object["metadata"]?["namespace"]?.string ?? "default"
        var warnings: [String] = []
        var causes: [(field: String, message: String)] = []
        for key in (object.object ?? [:]).keys.sorted() where !ClusterAPI.configMapFields.contains(key) {
            if strict { throw APIError.badRequest("strict decoding error: unknown field \"\(key)\"") }
            warnings.append("unknown field \"\(key)\"")
        }
        if !DNS.isSubdomain(name) {
            causes.append(("metadata.name", "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
        }
        var size = 0
        func entries(_ field: String) -> [String: JSON] {
            guard let v = object[field], v != .null else { return [:] }
            guard let o = v.object else { causes.append((field, "Invalid value: must be a map of strings")); return [:] }
            for (k, value) in o {
                if k.isEmpty || k.utf8.count > 253 || k == "." || k == ".." || k.hasPrefix("..")
                    || !k.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-._".unicodeScalars.contains($0)) }) {
                    causes.append(("\(field)[\(k)]", "Invalid value: \"\(k)\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"))
                }
                guard let text = value.string else { causes.append(("\(field)[\(k)]", "Invalid value: must be a string")); continue }
                if field == "binaryData" {
                    guard let bytes = Data(base64Encoded: text) else { causes.append(("binaryData[\(k)]", "Invalid value: not base64")); continue }
                    size += bytes.count
                } else {
                    size += text.utf8.count
                }
            }
            return o
        }
        let data = entries("data"), binary = entries("binaryData")
        for k in Set(data.keys).intersection(binary.keys).sorted() {
            causes.append(("data[\(k)]", "Invalid value: \"\(k)\": duplicate of key present in binaryData"))
        }
        if size > 1024 * 1024 { causes.append(("", "Too long: must have at most 1048576 bytes")) }
        let immutable = object["immutable"]?.bool
        if object["immutable"] != nil, object["immutable"] != .null, immutable == nil { causes.append(("immutable", "Invalid value: must be a boolean")) }
        // Labels and annotations: maps of strings with valid keys (and label values).
        for field in ["labels", "annotations"] {
            guard let v = object["metadata"]?[field], v != .null else { continue }
            guard let m = v.object else { causes.append(("metadata.\(field)", "Invalid value: must be a map of strings")); continue }
            for (k, value) in m {
                if let why = Names.qualifiedNameProblem(k) { causes.append(("metadata.\(field)", "Invalid value: \"\(k)\": \(why)")) }
                guard let text = value.string else { causes.append(("metadata.\(field)[\(k)]", "Invalid value: must be a string")); continue }
                if field == "labels" && !Names.isLabelValue(Substring(text)) {
                    causes.append(("metadata.labels", "Invalid value: \"\(text)\": a label value must be empty or at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"))
                }
            }
        }
        let key = configMapKey(ns, name)
        let old = runtime.apiObjects[key].flatMap { try? JSON.parse($0) }
        // Two creates of one name racing past the handler's check: the second is refused.
        if create && old != nil {
            throw APIError(409, "AlreadyExists", "configmaps \"\(name)\" already exists",
                           details: ["name": .string(name), "group": "", "kind": "configmaps"])
        }
        if let old, old["immutable"]?.bool == true {
            if old["data"] != object["data"] || old["binaryData"] != object["binaryData"] {
                causes.append(("data", "Forbidden: field is immutable when `immutable` is set"))
            }
            if immutable != true { causes.append(("immutable", "Forbidden: field is immutable when `immutable` is set")) }
        }
        if !causes.isEmpty {
            let text = causes.map { $0.field.isEmpty ? $0.message : "\($0.field): \($0.message)" }.joined(separator: ", ")
            throw APIError(422, "Invalid", "ConfigMap \"\(name)\" is invalid: \(text)",
                           details: ["name": .string(name), "kind": "ConfigMap",
                                     "causes": .array(causes.map { ["reason": "FieldValueInvalid", "message": .string($0.message), "field": .string($0.field)] })])
        }
        var meta: JSON = ["name": .string(name), "namespace": .string(ns)]
        meta["uid"] = old?["metadata"]?["uid"] ?? .string(UUID().uuidString.lowercased())
        meta["creationTimestamp"] = old?["metadata"]?["creationTimestamp"] ?? .string(rfc3339(Date()))
        for k in ["labels", "annotations"] {
            if let v = object["metadata"]?[k], v.object?.isEmpty == false { meta[k] = v }
        }
        var stored: JSON = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": meta]
        if !data.isEmpty { stored["data"] = .object(data) }
        if !binary.isEmpty { stored["binaryData"] = .object(binary) }
        if let immutable { stored["immutable"] = .bool(immutable) }
        runtime.updateAPIObjects { $0[key] = stored.text }
        return warnings
    }

    func deleteConfigMap(_ namespace: String, _ name: String) throws(APIError) {
        let key = configMapKey(namespace, name)
        guard runtime.apiObjects[key] != nil else { throw APIError.notFound("configmaps", name) }
        runtime.updateAPIObjects { $0[key] = nil }
    }

    /// A namespace's kube-root-ca.crt, made once.
    func ensureRootCA(_ namespace: String) {
        let key = configMapKey(namespace, ClusterAPI.rootCAName)
        guard runtime.apiObjects[key] == nil, let ca = try? String(contentsOfFile: files.caCert, encoding: .utf8) else { return }
        let o: JSON = ["apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": ["name": .string(ClusterAPI.rootCAName), "namespace": .string(namespace),
                                    "uid": .string(UUID().uuidString.lowercased()), "creationTimestamp": .string(rfc3339(Date())),
                                    "annotations": ["kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."]],
                       "data": ["ca.crt": .string(ca)]]
        runtime.updateAPIObjects { $0[key] = o.text }
    }

    /// Removes a deleted namespace's ConfigMaps.
    func dropConfigMaps(in namespace: String) {
        runtime.updateAPIObjects { objects in
            for k in objects.keys where k.hasPrefix("configmaps/\(namespace)/") { objects[k] = nil }
        }
    }
}
