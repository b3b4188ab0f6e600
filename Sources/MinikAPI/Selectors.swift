// Label and field selectors as the apiserver parses them from `labelSelector=` and
// `fieldSelector=` (k8s.io/apimachinery/pkg/labels and pkg/fields):
//   labels: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a   (comma = and)
//   fields: a.b=c, a.b==c, a.b!=c over the fields a resource supports.

public struct SelectorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

public struct LabelSelector: Sendable, Equatable {
    public enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    public var requirements: [Requirement]
    public static let everything = LabelSelector(requirements: [])

    public init(requirements: [Requirement]) { self.requirements = requirements }

    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { r in
            switch r {
            case .equals(let k, let v): return labels[k] == v
            case .notEquals(let k, let v): return labels[k] != v
            case .isIn(let k, let vs): return labels[k].map(vs.contains) ?? false
            case .notIn(let k, let vs): return labels[k].map { !vs.contains($0) } ?? true
            case .exists(let k): return labels[k] != nil
            case .doesNotExist(let k): return labels[k] == nil
            }
        }
    }

    /// From matchLabels (and matchExpressions) of a LabelSelector object.
    public init(object: JSON?) throws(SelectorError) {
        var reqs: [Requirement] = []
        for (k, v) in (object?["matchLabels"]?.stringMap ?? [:]).sorted(by: { $0.key < $1.key }) { reqs.append(.equals(k, v)) }
        for e in object?["matchExpressions"]?.array ?? [] {
            guard let k = e["key"]?.string, let op = e["operator"]?.string else { throw SelectorError(message: "matchExpressions need key and operator") }
            let values = Set((e["values"]?.array ?? []).compactMap(\.string))
            switch op {
            case "In": reqs.append(.isIn(k, values))
            case "NotIn": reqs.append(.notIn(k, values))
            case "Exists": reqs.append(.exists(k))
            case "DoesNotExist": reqs.append(.doesNotExist(k))
            default: throw SelectorError(message: "\"\(op)\" is not a valid label selector operator")
            }
        }
        requirements = reqs
    }

    public static func parse(_ text: String) throws(SelectorError) -> LabelSelector {
        var reqs: [Requirement] = []
        let chars = Array(text)
        var i = 0
        func skip() { while i < chars.count, chars[i] == " " { i += 1 } }
        func word() -> String {
            var w = ""
            while i < chars.count, !" ,=!()".contains(chars[i]) { w.append(chars[i]); i += 1 }
            return w
        }
        while true {
            skip()
            if i >= chars.count { break }
            if chars[i] == "!" {
                i += 1
                skip()
                let k = word()
                guard !k.isEmpty else { throw SelectorError(message: "unable to parse requirement: missing key after '!'") }
                reqs.append(.doesNotExist(k))
            } else {
                let k = word()
                guard !k.isEmpty else { throw SelectorError(message: "unable to parse requirement: found '\(chars[i])', expected: identifier") }
                skip()
                if i >= chars.count || chars[i] == "," {
                    reqs.append(.exists(k))
                } else if chars[i] == "=" || chars[i] == "!" {
                    let negate = chars[i] == "!"
                    i += 1
                    if i < chars.count, chars[i] == "=" { i += 1 } else if negate { throw SelectorError(message: "unable to parse requirement: expected '=' after '!'") }
                    skip()
                    let v = word()
                    reqs.append(negate ? .notEquals(k, v) : .equals(k, v))
                } else {
                    let op = word()
                    guard op == "in" || op == "notin" else { throw SelectorError(message: "unable to parse requirement: found '\(op)', expected: in, notin, =, ==, !=") }
                    skip()
                    guard i < chars.count, chars[i] == "(" else { throw SelectorError(message: "unable to parse requirement: expected '('") }
                    i += 1
                    var values: Set<String> = []
                    while true {
                        skip()
                        let v = word()
                        if !v.isEmpty { values.insert(v) }
                        skip()
                        guard i < chars.count else { throw SelectorError(message: "unable to parse requirement: expected ')'") }
                        if chars[i] == "," { i += 1; continue }
                        if chars[i] == ")" { i += 1; break }
                        throw SelectorError(message: "unable to parse requirement: unexpected '\(chars[i])'")
                    }
                    // "a in ()" is the set with the empty value, as apimachinery parses it.
                    if values.isEmpty { values = [""] }
                    reqs.append(op == "in" ? .isIn(k, values) : .notIn(k, values))
                }
            }
            skip()
            if i < chars.count {
                guard chars[i] == "," else { throw SelectorError(message: "unable to parse requirement: found '\(chars[i])', expected: ','") }
                i += 1
                skip()
                if i >= chars.count { throw SelectorError(message: "found '', expected: !, identifier") }
            }
        }
        return LabelSelector(requirements: reqs)
    }
}

public struct FieldSelector: Sendable, Equatable {
    public struct Term: Sendable, Equatable {
        public var field: String
        public var value: String
        public var negated: Bool
    }

    public var terms: [Term]
    public static let everything = FieldSelector(terms: [])

    /// The fields every resource supports, and those of some (as their strategies'
    /// field label conversion funcs list them).
    static let common: Set<String> = ["metadata.name", "metadata.namespace"]
    static let byResource: [String: Set<String>] = [
        "pods": ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "status.phase", "status.podIP", "status.nominatedNodeName"],
        "events": ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                   "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"],
        "nodes": ["spec.unschedulable"],
        "namespaces": ["status.phase"],
    ]

    public static func parse(_ text: String, resource: String) throws(SelectorError) -> FieldSelector {
        var terms: [Term] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let p = String(part).trimmingSpaces
            let negated: Bool
            let pieces: [String]
            if let r = p.range(of: "!=") {
                negated = true
                pieces = [String(p[..<r.lowerBound]), String(p[r.upperBound...])]
            } else if let r = p.range(of: "==") {
                negated = false
                pieces = [String(p[..<r.lowerBound]), String(p[r.upperBound...])]
            } else if let r = p.range(of: "=") {
                negated = false
                pieces = [String(p[..<r.lowerBound]), String(p[r.upperBound...])]
            } else {
                throw SelectorError(message: "invalid selector: '\(p)'; can't understand '\(p)'")
            }
            let field = pieces[0].trimmingSpaces
            guard common.contains(field) || byResource[resource]?.contains(field) == true else {
                throw SelectorError(message: "field label not supported: \(field)")
            }
            terms.append(Term(field: field, value: pieces[1].trimmingSpaces, negated: negated))
        }
        return FieldSelector(terms: terms)
    }

    public func matches(_ object: JSON) -> Bool {
        terms.allSatisfy { t in
            let v = FieldSelector.value(of: t.field, in: object)
            return t.negated ? v != t.value : v == t.value
        }
    }

    static func value(of field: String, in object: JSON) -> String {
        if field == "source" { return object["source"]?["component"]?.string ?? "" }
        var v: JSON? = object
        for k in field.split(separator: ".") { v = v?[String(k)] }
        switch v {
        case .string(let s)?: return s
        case .bool(let b)?: return b ? "true" : "false"
        case .int(let i)?: return String(i)
        default: return ""
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
