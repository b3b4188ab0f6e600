// What the Kubernetes API server checks in a pod's fields before it stores the object,
// and what the container runtime checks in an image name: label and annotation keys
// (qualified names), label values, environment variable names, image references, the
// resources of a container, and the limits minik adds (containers per pod, pods per
// cluster). Pure; each problem is reported at its place by the Builder.

public enum Names {
    /// A label value: empty, or at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.'
    /// starting and ending with an alphanumeric (apimachinery IsValidLabelValue).
    public static func isLabelValue(_ s: Substring) -> Bool {
        s.isEmpty || isQualifiedNamePart(s)
    }

    /// The name part of a qualified name: like a label value, but not empty.
    static func isQualifiedNamePart(_ s: Substring) -> Bool {
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        guard let first = u.first, let last = u.last, u.count <= 63 else { return false }
        return alnum(first) && alnum(last) && u.allSatisfy { alnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }

    /// Why `key` is not a label or annotation key, or nil. A key is a qualified name: an
    /// optional DNS subdomain prefix and '/', then a name of at most 63 characters
    /// (apimachinery IsQualifiedName): "app", "app.kubernetes.io/name".
    public static func qualifiedNameProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else {
            return "a key is a name with an optional DNS subdomain prefix and '/' (e.g. app or example.com/app); it has one '/' at most"
        }
        let name = parts[parts.count - 1]
        if parts.count == 2 {
            let prefix = String(parts[0])
            if !DNS.isSubdomain(prefix) {
                return "prefix \"\(prefix)\" is not a DNS subdomain (at most 253 characters: lower-case labels of a-z, 0-9 and '-', separated by dots)"
            }
        }
        if name.isEmpty { return "the name part must not be empty" }
        if !isQualifiedNamePart(name) {
            return "the name part \"\(name)\" must be at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    /// An environment variable name as the API server of Kubernetes 1.32 checks it: with
    /// RelaxedEnvironmentVariableValidation (beta, on by default since 1.32) any
    /// printable ASCII character but '=' (IsRelaxedEnvVarName), and not empty. '=' would
    /// end the name early in the environment block ("PATH=/x:" named "A" sets PATH), and
    /// control characters and non-ASCII bytes are refused. Older servers took only
    /// [-._a-zA-Z][-._a-zA-Z0-9]*; a name with a space is valid since 1.32.
    public static func isEnvVarName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { $0 >= 32 && $0 <= 126 && $0 != UInt8(ascii: "=") }
    }
}

/// A Docker image reference, by the grammar of distribution's reference package, which
/// containerd and the kubelet use:
///
///     reference ::= name (":" tag)? ("@" digest)?
///     name      ::= (domain "/")? component ("/" component)*      (at most 255 characters)
///     domain    ::= host (":" port)?    (the first component, when it has '.' or ':',
///                                        is "localhost" or has an upper-case letter)
///     component ::= [a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*
///     tag       ::= [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
///     digest    ::= algorithm ":" [0-9a-fA-F]{32,}
///
/// So "..", "../../etc" and "/bin/sh" are not image names.
public enum ImageReference {
    /// Why `reference` is not an image reference, or nil when it is one.
    public static func problem(_ reference: String) -> String? {
        var rest = Substring(reference)
        if let at = rest.firstIndex(of: "@") {
            let digest = rest[rest.index(after: at)...]
            if !isDigest(digest) { return "digest \"\(digest)\" is not <algorithm>:<at least 32 hex digits>" }
            rest = rest[..<at]
        }
        // A tag follows the last ':' after the last '/'; a ':' before a '/' is a port.
        if let colon = rest.lastIndex(of: ":"), rest.lastIndex(of: "/").map({ colon > $0 }) ?? true {
            let tag = rest[rest.index(after: colon)...]
            if !isTag(tag) { return "tag \"\(tag)\" is not 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' and '-' (not starting with '.' or '-')" }
            rest = rest[..<colon]
        }
        if rest.utf8.count > 255 { return "the name is longer than 255 characters" }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" || first.contains(where: \.isUppercase) {
            if !isDomain(first) { return "registry \"\(first)\" is not a host name with an optional port" }
            components.removeFirst()
        }
        for c in components where !isPathComponent(c) {
            if c.isEmpty { return "it has an empty path component (a '/' at the start or end, or two together)" }
            return "path component \"\(c)\" is not lower-case letters and digits separated by '.', '_', '__' or '-'"
        }
        return nil
    }

    static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }

    static func isPathComponent(_ s: Substring) -> Bool {
        let u = Array(s.utf8)
        var i = 0
        var needAlnum = true
        while i < u.count {
            if isLowerAlnum(u[i]) {
                needAlnum = false
                i += 1
                continue
            }
            if needAlnum { return false }
            switch u[i] {
            case UInt8(ascii: "."): i += 1
            case UInt8(ascii: "_"): i += (i + 1 < u.count && u[i + 1] == UInt8(ascii: "_")) ? 2 : 1
            case UInt8(ascii: "-"): while i < u.count && u[i] == UInt8(ascii: "-") { i += 1 }
            default: return false
            }
            needAlnum = true
        }
        return !needAlnum
    }

    static func isTag(_ s: Substring) -> Bool {
        let u = Array(s.utf8)
        func word(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || isLowerAlnum(c) || c == UInt8(ascii: "_") }
        guard let first = u.first, word(first), u.count <= 128 else { return false }
        return u.allSatisfy { word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    static func isDigest(_ s: Substring) -> Bool {
        guard let colon = s.firstIndex(of: ":") else { return false }
        let algorithm = s[..<colon], hex = s[s.index(after: colon)...]
        let parts = algorithm.split(omittingEmptySubsequences: false, whereSeparator: { "+._-".contains($0) })
        let algorithmOK = parts.allSatisfy { p in
            guard let f = p.first, f.isASCII, f.isLetter else { return false }
            return p.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
        }
        return algorithmOK && hex.count >= 32 && hex.allSatisfy(\.isHexDigit)
    }

    /// host[:port], the host a domain name of letters, digits and '-' components, or an
    /// IPv6 address in brackets.
    static func isDomain(_ s: Substring) -> Bool {
        var host = s
        if s.first == "[" {
            guard let close = s.firstIndex(of: "]") else { return false }
            let inside = s[s.index(after: s.startIndex)..<close]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
            let after = s[s.index(after: close)...]
            return after.isEmpty || (after.first == ":" && isPort(after.dropFirst()))
        }
        if let colon = s.lastIndex(of: ":") {
            guard isPort(s[s.index(after: colon)...]) else { return false }
            host = s[..<colon]
        }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            let u = Array(label.utf8)
            func alnum(_ c: UInt8) -> Bool { isLowerAlnum(c) || (c >= 65 && c <= 90) }
            guard let f = u.first, let l = u.last else { return false }
            return alnum(f) && alnum(l) && u.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") }
        }
    }

    static func isPort(_ s: Substring) -> Bool { !s.isEmpty && s.allSatisfy { $0.isASCII && $0.isNumber } }
}

extension SpecLoader {
    /// Containers and init containers of one pod. Kubernetes sets no number: what bounds
    /// a pod there is the size of one object in etcd (1.5 MiB), room for tens of thousands
    /// of minimal containers. minik starts each container in turn as its own process, with
    /// its own mount namespace and image rootfs, memory and pids cgroups and a log file,
    /// so one pod with thousands of them is a generated list gone wrong, not a pod. Real
    /// pods have an application and a few sidecars; 256 is far above that and keeps one
    /// pod's start to seconds.
    public static let maxContainersPerPod = 256

    /// The smallest memory limit a container may have: 6 MiB, Docker's floor
    /// (linuxMinMemory, "Minimum memory limit allowed is 6MB"). Below a few MiB the
    /// container's own setup (a clone, mounts, execve of a dynamically linked program) is
    /// killed by the OOM killer before the program runs; "0" would be a limit of nothing,
    /// not "unlimited".
    public static let minMemoryLimit: Int64 = 6 * 1024 * 1024

    /// The smallest ephemeral-storage limit: 1 MiB. It sizes the tmpfs of the writable
    /// layer, and a tmpfs of size 0 has no limit at all.
    public static let minEphemeralStorageLimit: Int64 = 1024 * 1024

    /// Kubernetes' limit on the annotations of one object (TotalAnnotationSizeLimitB).
    public static let maxAnnotationBytes = 256 * 1024

    /// Why `replicas` more pods do not fit a cluster of `nodes` nodes that has `others`
    /// pods besides them, or nil. Each node's /24 podCIDR gives `podsPerNode` addresses;
    /// checked before a Deployment is expanded, so "replicas: 1000000000" costs nothing.
    public static func capacityProblem(replicas: Int, others: Int, nodes: Int) -> String? {
        let capacity = nodes * podsPerNode
        guard replicas > capacity - others else { return nil }
        let hold = "the \(capacity) pod addresses of the cluster's \(nodes) node\(nodes == 1 ? "" : "s") (a /24 podCIDR each: \(podsPerNode) pods)"
        if replicas > capacity { return "replicas \(replicas) is more than \(hold)" }
        return "replicas \(replicas) would bring the cluster to \(others + replicas) pods (\(others) besides this Deployment's), more than \(hold)"
    }
}

// MARK: - checks at the place of each field

extension YAMLReader {
    /// A string that is handed to the kernel as a C string (an argv entry, an environment
    /// value, a path): a NUL byte would silently cut it short there. One with a NUL byte
    /// is reported and still returned, so that nothing else is reported for its absence.
    func cString(_ y: YNode?) -> String? {
        guard let y, let s = string(y) else { return nil }
        refuseNUL(y, s)
        return s
    }

    /// A list of C strings (command, args).
    func cStringList(_ y: YNode?) -> [String]? {
        stringItems(y)?.map { item in
            refuseNUL(item.at, item.value)
            return item.value
        }
    }

    func refuseNUL(_ y: YNode, _ s: String) {
        if s.utf8.contains(0) { fail(y, "contains a NUL byte, which would cut the string short where the kernel reads it") }
    }
}

extension Builder {
    /// Labels (metadata.labels, selectors, nodeSelector, node labels): each key a
    /// qualified name, each value a label value, refused at its place.
    func labels(_ y: YNode?) -> [String: String]? {
        guard let entries = r.stringEntries(y) else { return nil }
        var out: [String: String] = [:]
        for e in entries {
            if let problem = Names.qualifiedNameProblem(e.key) {
                r.fail(e.keyAt, "label key \"\(e.key)\" is not valid: \(problem)")
            } else if !Names.isLabelValue(Substring(e.value)) {
                r.fail(e.valueAt, "label value \"\(e.value)\" of \(e.key) is not valid: it must be empty or at most 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit")
            } else {
                out[e.key] = e.value
            }
        }
        return out
    }

    /// metadata.annotations: keys are qualified names; the values are free, but all of
    /// them together at most 256 KiB, as in Kubernetes.
    func annotations(_ y: YNode?) -> [String: String]? {
        guard let y, let entries = r.stringEntries(y) else { return nil }
        var out: [String: String] = [:]
        var size = 0
        for e in entries {
            size += e.key.utf8.count + e.value.utf8.count
            if let problem = Names.qualifiedNameProblem(e.key) {
                r.fail(e.keyAt, "annotation key \"\(e.key)\" is not valid: \(problem)")
            } else {
                out[e.key] = e.value
            }
        }
        if size > SpecLoader.maxAnnotationBytes {
            r.fail(y, "the annotations take \(size) bytes; Kubernetes allows \(SpecLoader.maxAnnotationBytes) (256 KiB) per object")
        }
        return out
    }

    /// A container's env list: names as Kubernetes 1.32 checks them (Names.isEnvVarName),
    /// values without NUL bytes. A name given twice is kept: the last one wins, as in
    /// Kubernetes.
    func envList(_ y: YNode?) -> [EnvVar] {
        var env: [EnvVar] = []
        for e in r.sequence(y) ?? [] {
            guard let ef = r.mapping(e, "an env entry", known: ["name", "value"], ignored: ["valueFrom": "not implemented by minik yet"]) else { continue }
            guard let ny = ef["name"], let n = r.string(ny) else {
                r.fail(ef["name"] ?? e, "env name is required")
                continue
            }
            guard Names.isEnvVarName(n) else {
                r.fail(ny, "env name \"\(n)\" is not valid: at least one character, each printable ASCII but '=' (as Kubernetes 1.32 checks it)")
                continue
            }
            env.append(EnvVar(name: n, value: r.cString(ef["value"]) ?? ""))
        }
        return env
    }

    /// A resource quantity of a container as bytes (scale 0) or millicores (scale 3);
    /// nil, the problem reported, when it is malformed, negative or too large.
    func quantity(_ y: YNode, _ resource: String, scale: Int) -> Int64? {
        guard let text = r.string(y) else { return nil }
        guard let q = Quantity(text) else {
            r.fail(y, "\(resource) quantity \"\(text)\" is not valid (\(Quantity.grammar))")
            return nil
        }
        if q.isNegative {
            r.fail(y, "\(resource) quantity \"\(text)\" is negative (it must be 0 or more)")
            return nil
        }
        guard let v = q.scaled(scale) else {
            r.fail(y, "\(resource) quantity \"\(text)\" is too large (at most \(Int64.max) \(scale == 3 ? "millicores" : "bytes"))")
            return nil
        }
        return v
    }

    /// resources.limits and resources.requests of a container: memory, cpu and
    /// ephemeral-storage checked as quantities, a request no more than its limit (as in
    /// Kubernetes), the memory limit at least minMemoryLimit and the ephemeral-storage
    /// limit (the size of the writable layer's tmpfs, where 0 would mean no limit at all)
    /// at least minEphemeralStorageLimit. The two limits in bytes, or nil.
    func resources(_ y: YNode) -> (memory: Int64?, ephemeralStorage: Int64?) {
        guard let rf = r.mapping(y, "resources", known: ["limits", "requests"], ignored: ["claims": "not implemented by minik yet"]) else { return (nil, nil) }
        var values: [String: [String: (Int64, YNode)]] = [:]
        for (key, ly) in [("limits", rf["limits"]), ("requests", rf["requests"])] {
            guard let ly, let lf = r.mapping(ly, "resources.\(key)", known: ["memory", "cpu", "ephemeral-storage"]) else { continue }
            for (resource, scale) in [("memory", 0), ("cpu", 3), ("ephemeral-storage", 0)] {
                if let qy = lf[resource], let v = quantity(qy, resource, scale: scale) { values[key, default: [:]][resource] = (v, qy) }
            }
        }
        for resource in ["memory", "cpu", "ephemeral-storage"] {
            if let (request, at) = values["requests"]?[resource], let (limit, _) = values["limits"]?[resource], request > limit {
                r.fail(at, "the \(resource) request is more than the \(resource) limit (a request must be at most its limit)")
            }
        }
        var memory: Int64?
        if let (limit, at) = values["limits"]?["memory"] {
            if limit < SpecLoader.minMemoryLimit {
                r.fail(at, "memory limit \(limit) bytes is below the \(SpecLoader.minMemoryLimit / 1_048_576)Mi minimum: a container cannot start its program in less (e.g. 64Mi)")
            } else {
                memory = limit
            }
        }
        var storage: Int64?
        if let (limit, at) = values["limits"]?["ephemeral-storage"] {
            if limit < SpecLoader.minEphemeralStorageLimit {
                r.fail(at, "ephemeral-storage limit \(limit) bytes is below the \(SpecLoader.minEphemeralStorageLimit / 1_048_576)Mi minimum (the container's writable layer; e.g. 64Mi)")
            } else {
                storage = limit
            }
        }
        return (memory, storage)
    }
}
