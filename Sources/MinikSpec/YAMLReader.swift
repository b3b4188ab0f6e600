// A strict reader over Yams' node tree that remembers where every value was written,
// so each problem names file:line:column and the field path, and every problem in a file
// is collected before anything is reported (kind's Validate does the same).
import Yams

/// One thing wrong with the user's input, with its place.
public struct SpecProblem: Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation?
    public var message: String

    public init(_ location: SourceLocation?, _ message: String) {
        self.location = location
        self.message = message
    }

    public var description: String {
        guard let l = location else { return message }
        return "\(l): \(message)"
    }
}

/// Every problem found in a spec file. Nothing is created when this is thrown.
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var problems: [SpecProblem]

    public init(_ problems: [SpecProblem]) { self.problems = problems }

    public var description: String {
        if problems.count == 1 { return problems[0].description }
        return "\(problems.count) problems:\n" + problems.map { "  " + $0.description }.joined(separator: "\n")
    }
}

/// A YAML node and the field path that leads to it ("nodes[1].role").
struct YNode {
    let node: Node
    let path: String
    /// The key node the value was found under, for "unknown field" marks.
    let keyMark: Mark?

    init(_ node: Node, path: String, keyMark: Mark? = nil) {
        self.node = node
        self.path = path
        self.keyMark = keyMark
    }

    func child(_ key: String, _ node: Node, keyMark: Mark?) -> YNode {
        YNode(node, path: path.isEmpty ? key : "\(path).\(key)", keyMark: keyMark)
    }

    var isNull: Bool {
        if case .scalar(let s) = node, s.tag == .implicit || s.tag.rawValue == Tag.Name.null.rawValue {
            return s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)
        }
        return false
    }
}

final class YAMLReader {
    let file: String
    private(set) var problems: [SpecProblem] = []
    private(set) var warnings: [String] = []

    /// false: unknown fields are warnings, not problems (the API's fieldValidation=Warn).
    var strict = true

    init(file: String) { self.file = file }

    func location(_ y: YNode, atKey: Bool = false) -> SourceLocation {
        let mark = (atKey ? y.keyMark : nil) ?? y.node.mark ?? y.keyMark
        return SourceLocation(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, field: y.path)
    }

    func fail(_ y: YNode?, _ message: String, atKey: Bool = false) {
        problems.append(SpecProblem(y.map { location($0, atKey: atKey) }, message))
    }

    /// A problem with the whole file, put at its start.
    func failFile(_ message: String) {
        problems.append(SpecProblem(SourceLocation(file: file, line: 1, column: 1, field: ""), message))
    }

    func warn(_ y: YNode, _ message: String) {
        warnings.append("\(location(y, atKey: true)): \(message)")
    }

    /// Parses every document of the file. YAML syntax errors become a problem with the
    /// line they were found on; the documents read before it are still returned.
    func documents(_ text: String) -> [YNode] {
        var result: [YNode] = []
        do {
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() {
                result.append(YNode(node, path: ""))
            }
        } catch let error as YamlError {
            problems.append(YAMLReader.problem(from: error, file: file))
        } catch {
            problems.append(SpecProblem(SourceLocation(file: file, line: 0, column: 0, field: ""),
                                        "malformed YAML: \(error)"))
        }
        return result
    }

    static func problem(from error: YamlError, file: String) -> SpecProblem {
        func at(_ mark: Mark) -> SourceLocation {
            SourceLocation(file: file, line: mark.line, column: mark.column, field: "")
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let ctx = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            return SpecProblem(at(mark), "malformed YAML: \(problem)\(ctx)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return SpecProblem(at(context.mark), "duplicate key \(duplicates.joined(separator: ", ")) in a mapping")
        case .reader(let problem, let offset, _, _):
            return SpecProblem(SourceLocation(file: file, line: 0, column: 0, field: ""),
                               "malformed YAML: \(problem)\(offset.map { " at byte \($0)" } ?? "")")
        default:
            return SpecProblem(SourceLocation(file: file, line: 0, column: 0, field: ""), "malformed YAML: \(error)")
        }
    }

    // MARK: typed access

    /// The fields of a mapping. Fields outside `known` and `ignored` are problems (a typo
    /// must not pass silently); `ignored` ones are accepted with a warning saying why.
    func mapping(_ y: YNode, _ what: String, known: [String], ignored: [String: String] = [:]) -> [String: YNode]? {
        guard case .mapping(let m) = y.node else {
            if y.isNull { return [:] }
            fail(y, "\(what) must be a mapping")
            return nil
        }
        var fields: [String: YNode] = [:]
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                fail(YNode(k, path: y.path), "keys of \(what) must be strings")
                continue
            }
            let key = ks.string
            let child = y.child(key, v, keyMark: k.mark)
            if let reason = ignored[key] {
                warn(child, "ignored: \(reason)")
                continue
            }
            guard known.contains(key) else {
                if !strict {
                    // fieldValidation=Warn (the API's default): dropped, with a warning.
                    warn(child, "unknown field \"\(child.path)\"")
                    continue
                }
                let hint = YAMLReader.closest(key, in: known).map { "did you mean \"\($0)\"? " } ?? ""
                fail(child, "unknown field \"\(key)\" in \(what) (\(hint)valid fields: \(known.joined(separator: ", ")))", atKey: true)
                continue
            }
            fields[key] = child
        }
        return fields
    }

    func string(_ y: YNode?) -> String? {
        guard let y else { return nil }
        guard case .scalar(let s) = y.node else {
            fail(y, "must be a string")
            return nil
        }
        if y.isNull { return nil }
        return s.string
    }

    func int(_ y: YNode?) -> Int? {
        guard let y else { return nil }
        guard case .scalar(let s) = y.node, s.style == .plain, let v = Int(s.string) else {
            fail(y, "must be an integer")
            return nil
        }
        return v
    }

    func bool(_ y: YNode?) -> Bool? {
        guard let y else { return nil }
        guard case .scalar = y.node, let b = y.node.bool else {
            fail(y, "must be true or false")
            return nil
        }
        return b
    }

    func sequence(_ y: YNode?) -> [YNode]? {
        guard let y else { return nil }
        if y.isNull { return [] }
        guard case .sequence(let s) = y.node else {
            fail(y, "must be a list")
            return nil
        }
        return s.enumerated().map { YNode($1, path: "\(y.path)[\($0)]", keyMark: $1.mark) }
    }

    /// The items of a list of strings, with where each was written.
    func stringItems(_ y: YNode?) -> [(value: String, at: YNode)]? {
        guard let items = sequence(y) else { return nil }
        return items.compactMap { item in
            guard case .scalar(let s) = item.node else {
                fail(item, "must be a string")
                return nil
            }
            return (s.string, item)
        }
    }

    func stringList(_ y: YNode?) -> [String]? {
        stringItems(y)?.map { $0.value }
    }

    /// The entries of a mapping of strings, each with where its key and its value were
    /// written (under the mapping's field path, as Kubernetes reports a bad label).
    func stringEntries(_ y: YNode?) -> [(key: String, keyAt: YNode, value: String, valueAt: YNode)]? {
        guard let y else { return nil }
        if y.isNull { return [] }
        guard case .mapping(let m) = y.node else {
            fail(y, "must be a mapping of strings")
            return nil
        }
        var out: [(key: String, keyAt: YNode, value: String, valueAt: YNode)] = []
        for (k, v) in m {
            guard case .scalar(let ks) = k, case .scalar(let vs) = v else {
                fail(YNode(v, path: y.path), "must be a mapping of strings")
                continue
            }
            out.append((ks.string, YNode(k, path: y.path), vs.string, YNode(v, path: y.path)))
        }
        return out
    }

    /// A known field within edit distance 2 of a mistyped one, for "did you mean".
    static func closest(_ word: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(Array(word.lowercased()), Array(c.lowercased()))
            if d <= 2, best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = prev
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
