// The kubeconfig a user's kubectl reads, as kind writes it: one cluster, user and context
// named minik-<cluster>, with the CA, the admin's certificate and key embedded.
// `up` merges them into $KUBECONFIG's first file (or ~/.kube/config, created 0600) and
// makes the context current; `down` removes them (and unsets current-context if it was
// ours). Nothing else of the user's file changes. A lock file beside it (client-go's
// "<file>.lock" convention) keeps two minik commands from interleaving their writes.
import Foundation
import Yams

public enum Kubeconfig {
    public static func contextName(_ cluster: String) -> String { "minik-\(cluster)" }

    /// The file kubectl reads first: $KUBECONFIG's first entry, else ~/.kube/config.
    public static func userPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let k = environment["KUBECONFIG"], let first = k.split(separator: ":").first, !first.isEmpty { return String(first) }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return "\(home)/.kube/config"
    }

    public static func render(cluster: String, server: String, caPEM: String, certPEM: String, keyPEM: String) -> String {
        let name = contextName(cluster)
        func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
        return """
            apiVersion: v1
            clusters:
            - cluster:
                certificate-authority-data: \(b64(caPEM))
                server: \(server)
              name: \(name)
            contexts:
            - context:
                cluster: \(name)
                user: \(name)
              name: \(name)
            current-context: \(name)
            kind: Config
            preferences: {}
            users:
            - name: \(name)
              user:
                client-certificate-data: \(b64(certPEM))
                client-key-data: \(b64(keyPEM))

            """
    }

    public struct KubeconfigError: Error, CustomStringConvertible {
        public var description: String
    }

    static func load(_ path: String) throws(KubeconfigError) -> [String: Any] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw KubeconfigError(description: "\(path): cannot read the kubeconfig") }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [:] }
        let doc: Any?
        do { doc = try Yams.load(yaml: text) } catch { throw KubeconfigError(description: "\(path): not a kubeconfig (\(error)); minik leaves it alone") }
        guard let d = doc as? [String: Any] else { throw KubeconfigError(description: "\(path): not a kubeconfig (not a mapping); minik leaves it alone") }
        return d
    }

    /// Runs body with the file's lock held.
    static func locked<T>(_ path: String, _ body: () throws(KubeconfigError) -> T) throws(KubeconfigError) -> T {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty && !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                throw KubeconfigError(description: "cannot create \(dir): \(error)")
            }
        }
        // The lock file is removed by its holder, so a waiter may win a lock on a file
        // already unlinked: it checks the path still names its file, and tries again.
        var lock: Int32 = -1
        while true {
            lock = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            guard lock >= 0 else { throw KubeconfigError(description: "cannot lock \(path).lock: \(String(cString: strerror(errno)))") }
            flock(lock, LOCK_EX)
            var held = stat(), named = stat()
            if fstat(lock, &held) == 0, stat(path + ".lock", &named) == 0, held.st_ino == named.st_ino, held.st_dev == named.st_dev { break }
            close(lock)
        }
        defer {
            unlink(path + ".lock")
            flock(lock, LOCK_UN)
            close(lock)
        }
        return try body()
    }

    static func save(_ doc: [String: Any], to path: String) throws(KubeconfigError) {
        let text: String
        do { text = try Yams.dump(object: doc, sortKeys: true) } catch { throw KubeconfigError(description: "cannot write \(path): \(error)") }
        var st = stat()
        let existed = stat(path, &st) == 0
        let tmp = path + ".minik-tmp"
        let fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, existed ? st.st_mode & 0o777 : 0o600)
        guard fd >= 0 else { throw KubeconfigError(description: "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        if existed { fchown(fd, st.st_uid, st.st_gid); fchmod(fd, st.st_mode & 0o777) }
        let bytes = Array(text.utf8)
        let ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
        fsync(fd)
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw KubeconfigError(description: "cannot write \(path)")
        }
    }

    static func named(_ list: Any?) -> [[String: Any]] { (list as? [Any])?.compactMap { $0 as? [String: Any] } ?? [] }

    /// Merges the cluster's entries (rendered by `render`) into the file at path and
    /// makes its context current.
    public static func merge(_ rendered: String, into path: String) throws(KubeconfigError) {
        let ours: [String: Any]
        do { ours = (try Yams.load(yaml: rendered) as? [String: Any]) ?? [:] } catch { throw KubeconfigError(description: "\(error)") }
        try locked(path) { () throws(KubeconfigError) in
            var doc = try load(path)
            for section in ["clusters", "users", "contexts"] {
                let mine = named(ours[section])
                let names = Set(mine.compactMap { $0["name"] as? String })
                var list = named(doc[section]).filter { !names.contains(($0["name"] as? String) ?? "") }
                list += mine
                doc[section] = list
            }
            doc["current-context"] = ours["current-context"]
            if doc["apiVersion"] == nil { doc["apiVersion"] = "v1" }
            if doc["kind"] == nil { doc["kind"] = "Config" }
            if doc["preferences"] == nil { doc["preferences"] = [String: Any]() }
            try save(doc, to: path)
        }
    }

    /// Removes the file if no cluster, user or context is left in it (for a kubeconfig
    /// made only for minik's clusters, as the tests' is).
    public static func removeIfEmpty(_ path: String) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        try? locked(path) { () throws(KubeconfigError) in
            let doc = try load(path)
            if ["clusters", "users", "contexts"].allSatisfy({ named(doc[$0]).isEmpty }) { unlink(path) }
        }
    }

    /// Removes the cluster's entries from the file (if it has them).
    public static func remove(cluster: String, from path: String) throws(KubeconfigError) {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let name = contextName(cluster)
        try locked(path) { () throws(KubeconfigError) in
            var doc = try load(path)
            var changed = false
            for section in ["clusters", "users", "contexts"] {
                let list = named(doc[section])
                let kept = list.filter { ($0["name"] as? String) != name }
                if kept.count != list.count { doc[section] = kept; changed = true }
            }
            if (doc["current-context"] as? String) == name { doc["current-context"] = ""; changed = true }
            if changed { try save(doc, to: path) }
        }
    }
}
