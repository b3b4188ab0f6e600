// PATCH bodies, by Content-Type, as the apiserver applies them:
//   application/merge-patch+json       RFC 7386: objects merge, null deletes, lists replace
//   application/json-patch+json        RFC 6902: add, remove, replace, move, copy, test
//   application/strategic-merge-patch+json
//       Kubernetes' strategic merge: lists with a merge key (containers by name, a
//       container's ports by containerPort, a service's ports by port, env by name...)
//       merge element by element; `$patch: delete|replace`, `$setElementOrder/<list>`,
//       `$deleteFromPrimitiveList/<list>` and `$retainKeys` directives as kubectl sends them.
// Anything else is 415 Unsupported Media Type.

public enum Patch {
    /// The PATCH content types the server takes (apply-patch: server-side apply).
    public static let types = ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json",
                               "application/apply-patch+yaml"]

    public static func apply(contentType: String, patch: JSON, to original: JSON) throws(APIError) -> JSON {
        let type = contentType.split(separator: ";").first.map { String($0).trimmingSpaces } ?? ""
        switch type {
        case "application/merge-patch+json": return merge(original, patch)
        case "application/json-patch+json": return try jsonPatch(original, patch)
        case "application/strategic-merge-patch+json":
            guard case .object = patch else { throw APIError.badRequest("a strategic merge patch must be a JSON object") }
            return strategic(original, patch, path: []) ?? [:]
        default:
            throw APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json")
        }
    }

    // MARK: RFC 7386

    public static func merge(_ original: JSON, _ patch: JSON) -> JSON {
        guard case .object(let p) = patch else { return patch }
        var result = original.object ?? [:]
        for (k, v) in p {
            if v == .null { result[k] = nil } else { result[k] = merge(result[k] ?? .null, v) }
        }
        return .object(result)
    }

    // MARK: RFC 6902

    static func pointer(_ p: String) throws(APIError) -> [String] {
        if p.isEmpty { return [] }
        guard p.hasPrefix("/") else { throw APIError.badRequest("json patch path \"\(p)\" must start with /") }
        return p.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    static func get(_ doc: JSON, _ path: [String]) -> JSON? {
        var v: JSON? = doc
        for k in path {
            switch v {
            case .object(let o)?: v = o[k]
            case .array(let a)?: v = Int(k).flatMap { $0 >= 0 && $0 < a.count ? a[$0] : nil }
            default: return nil
            }
        }
        return v
    }

    /// Sets (insert: adds into arrays) or removes (value nil) at path.
    static func set(_ doc: JSON, _ path: [String], _ value: JSON?, insert: Bool) throws(APIError) -> JSON {
        guard let k = path.first else { return value ?? .null }
        let rest = Array(path.dropFirst())
        switch doc {
        case .object(var o):
            if rest.isEmpty {
                if value == nil && o[k] == nil { throw APIError(422, "Invalid", "json patch: the path to remove does not exist: \(k)") }
                o[k] = value
            } else {
                guard let child = o[k] else { throw APIError(422, "Invalid", "json patch: the path does not exist: \(k)") }
                o[k] = try set(child, rest, value, insert: insert)
            }
            return .object(o)
        case .array(var a):
            let i = k == "-" ? a.count : Int(k) ?? -1
            if rest.isEmpty {
                if let value {
                    if insert {
                        guard i >= 0 && i <= a.count else { throw APIError(422, "Invalid", "json patch: index \(k) is out of range") }
                        a.insert(value, at: i)
                    } else {
                        guard i >= 0 && i < a.count else { throw APIError(422, "Invalid", "json patch: index \(k) is out of range") }
                        a[i] = value
                    }
                } else {
                    guard i >= 0 && i < a.count else { throw APIError(422, "Invalid", "json patch: index \(k) is out of range") }
                    a.remove(at: i)
                }
            } else {
                guard i >= 0 && i < a.count else { throw APIError(422, "Invalid", "json patch: index \(k) is out of range") }
                a[i] = try set(a[i], rest, value, insert: insert)
            }
            return .array(a)
        default:
            throw APIError(422, "Invalid", "json patch: cannot descend into a \(doc.typeName) at \(k)")
        }
    }

    public static func jsonPatch(_ original: JSON, _ patch: JSON) throws(APIError) -> JSON {
        guard let ops = patch.array else { throw APIError.badRequest("a json patch must be a JSON array of operations") }
        var doc = original
        for op in ops {
            guard let name = op["op"]?.string, let p = op["path"]?.string else { throw APIError.badRequest("json patch operations need op and path") }
            let path = try pointer(p)
            switch name {
            case "add":
                guard let v = op["value"] else { throw APIError.badRequest("json patch add needs a value") }
                doc = try set(doc, path, v, insert: true)
            case "replace":
                guard let v = op["value"] else { throw APIError.badRequest("json patch replace needs a value") }
                guard get(doc, path) != nil else { throw APIError(422, "Invalid", "json patch: the path to replace does not exist: \(p)") }
                doc = try set(doc, path, v, insert: false)
            case "remove":
                doc = try set(doc, path, nil, insert: false)
            case "move", "copy":
                guard let f = op["from"]?.string else { throw APIError.badRequest("json patch \(name) needs from") }
                let from = try pointer(f)
                guard let v = get(doc, from) else { throw APIError(422, "Invalid", "json patch: the path to \(name) from does not exist: \(f)") }
                if name == "move" { doc = try set(doc, from, nil, insert: false) }
                doc = try set(doc, path, v, insert: true)
            case "test":
                guard get(doc, path) == op["value"] else { throw APIError(422, "Invalid", "json patch: test failed at \(p)") }
            default:
                throw APIError.badRequest("json patch: unknown operation \"\(name)\"")
            }
        }
        return doc
    }

    // MARK: strategic merge

    /// The merge key of a list field (patchMergeKey in the Go types), by the field's path.
    public static func mergeKey(_ path: [String]) -> String? {
        guard let field = path.last else { return nil }
        switch field {
        case "containers", "initContainers", "ephemeralContainers", "env", "volumes", "imagePullSecrets":
            return "name"
        case "hostAliases": return "ip"
        case "ports":
            return path.contains("containers") || path.contains("initContainers") || path.contains("ephemeralContainers") ? "containerPort" : "port"
        case "volumeMounts": return "mountPath"
        case "volumeDevices": return "devicePath"
        case "conditions": return "type"
        case "ownerReferences": return "uid"
        case "addresses" where path.contains("status"): return "type"
        default: return nil
        }
    }

    /// Lists of scalars that merge (patchStrategy merge) rather than replace.
    static let mergedPrimitiveLists: Set<String> = ["finalizers"]

    static func strategic(_ original: JSON?, _ patch: JSON, path: [String]) -> JSON? {
        guard case .object(var p) = patch else { return patch }
        if let d = p["$patch"]?.string {
            if d == "delete" { return nil }
            if d == "replace" { p["$patch"] = nil; return clean(.object(p)) }
        }
        var result = original?.object ?? [:]
        if let retain = p["$retainKeys"]?.array?.compactMap(\.string) {
            let keep = Set(retain)
            for k in result.keys where !keep.contains(k) { result[k] = nil }
        }
        var orders: [String: [JSON]] = [:]
        for (k, v) in p {
            if k == "$patch" || k == "$retainKeys" { continue }
            if k.hasPrefix("$setElementOrder/") { orders[String(k.dropFirst("$setElementOrder/".count))] = v.array ?? []; continue }
            if k.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(k.dropFirst("$deleteFromPrimitiveList/".count))
                let drop = v.array ?? []
                if let a = result[field]?.array { result[field] = .array(a.filter { !drop.contains($0) }) }
                continue
            }
            switch v {
            case .null: result[k] = nil
            case .object: result[k] = strategic(result[k], v, path: path + [k])
            case .array(let items): result[k] = mergeList(result[k]?.array, items, path: path + [k])
            default: result[k] = v
            }
        }
        for (field, order) in orders {
            guard let a = result[field]?.array else { continue }
            result[field] = .array(reorder(a, order, key: mergeKey(path + [field])))
        }
        return .object(result)
    }

    /// A value without directives (for elements added whole).
    static func clean(_ v: JSON) -> JSON {
        switch v {
        case .object(let o):
            var out: [String: JSON] = [:]
            for (k, x) in o where !k.hasPrefix("$") { out[k] = clean(x) }
            return .object(out)
        case .array(let a): return .array(a.map(clean))
        default: return v
        }
    }

    static func mergeList(_ original: [JSON]?, _ patch: [JSON], path: [String]) -> JSON {
        guard let key = mergeKey(path) else {
            if let field = path.last, mergedPrimitiveLists.contains(field) {
                var out = original ?? []
                for v in patch where !out.contains(v) { out.append(v) }
                return .array(out)
            }
            return clean(.array(patch))
        }
        if patch.contains(where: { $0["$patch"]?.string == "replace" }) {
            return .array(patch.filter { $0["$patch"] == nil }.map(clean))
        }
        var out = original ?? []
        for item in patch {
            let k = item[key]
            let i = k.flatMap { k in out.firstIndex { $0[key] == k } }
            if item["$patch"]?.string == "delete" {
                if let i { out.remove(at: i) }
                continue
            }
            if let i {
                if let merged = strategic(out[i], item, path: path) { out[i] = merged } else { out.remove(at: i) }
            } else {
                out.append(clean(item))
            }
        }
        return .array(out)
    }

    static func reorder(_ list: [JSON], _ order: [JSON], key: String?) -> [JSON] {
        func id(_ v: JSON) -> JSON { key.flatMap { v[$0] } ?? v }
        var rest = list
        var out: [JSON] = []
        for o in order {
            if let i = rest.firstIndex(where: { id($0) == id(o) }) { out.append(rest.remove(at: i)) }
        }
        return out + rest
    }
}
