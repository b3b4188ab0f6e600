// Removing a cluster, with or without its supervisor. Everything minik creates lives in
// namespaces named "minik-<cluster>.*" under /run/netns (links, addresses, routes,
// neighbours, FDB entries all die with their namespace), plus the processes holding pod
// namespaces and the state directory. So teardown is:
//   1. find every process inside one of the cluster's namespaces (its /proc/PID/ns/net
//      inode matches a pin) and every recorded sandbox pid, and SIGKILL them;
//   2. unmount and unlink every pin; the kernel frees the namespaces and their links in
//      one batch (tens of ms for hundreds of veths, against seconds one by one);
//   3. kill what is left in the cluster's cgroups (a container started meanwhile), remove
//      them, and remove /run/minik/<cluster>.
// Nothing here fails halfway: each step is best effort and "already gone" is fine.
import Foundation

public enum Teardown {
    public struct Report: Sendable {
        public var killed: Int
        public var namespaces: Int
    }

    @discardableResult
    public static func destroy(cluster: String, knownPIDs: [(Int32, UInt64)] = [], keepStateDir: Bool = false) -> Report {
        let names = NetNamespace.list(prefix: Naming.netnsPrefix(cluster))
        var inodes = Set<UInt64>()
        for n in names {
            if let i = NetNamespace.inode(path: Naming.netnsPath(n)) { inodes.insert(i) }
        }
        var victims = Set<Int32>()
        for (pid, start) in knownPIDs where Sandbox.isAlive(pid, startTime: start) { victims.insert(pid) }
        let me = getpid()
        for pid in processes(inNamespaces: inodes) where pid != me { victims.insert(pid) }
        for pid in victims { kill(pid, SIGKILL) }
        // Reap our own children; wait (briefly) for the others to be gone.
        let deadline = Date().addingTimeInterval(2)
        var left = victims
        while !left.isEmpty && Date() < deadline {
            for pid in left {
                // Gone or a zombie: reap it if it is our child (a no-op otherwise).
                if !Sandbox.isRunning(pid) {
                    var status: Int32 = 0
                    _ = waitpid(pid, &status, WNOHANG)
                    left.remove(pid)
                }
            }
            if !left.isEmpty { usleep(1000) }
        }
        for n in names { try? NetNamespace.remove(n) }
        // A container started while this ran (a restart falling due), or a pause whose
        // spawn was under way when its supervisor was killed, is in no namespace we could
        // still find, but it joins the cluster's cgroups before its first instruction.
        // Kill what is there until the cgroups themselves are gone: a process that joins
        // after a sweep makes rmdir fail (EBUSY) and is swept next time; one that tries to
        // join after the rmdir fails to and exits.
        for _ in 0..<300 {
            for pid in Cgroups.processes(cluster: cluster) where pid != me { kill(pid, SIGKILL) }
            if Cgroups.removeOnce(cluster: cluster) { break }
            usleep(10_000)
        }
        if !keepStateDir {
            try? FileManager.default.removeItem(atPath: Naming.clusterDir(cluster))
            NetNamespace.releaseDirectoryIfIdle()
        }
        return Report(killed: victims.count, namespaces: names.count)
    }

    /// PIDs whose network namespace is one of `inodes`.
    public static func processes(inNamespaces inodes: Set<UInt64>) -> [Int32] {
        guard !inodes.isEmpty, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var out: [Int32] = []
        var buf = [CChar](repeating: 0, count: 64)
        for e in entries {
            guard let pid = Int32(e) else { continue }
            let n = readlink("/proc/\(pid)/ns/net", &buf, buf.count - 1)
            guard n > 0 else { continue }
            let link = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) // "net:[4026532285]"
            guard let open = link.firstIndex(of: "["), let close = link.firstIndex(of: "]"),
                  let ino = UInt64(link[link.index(after: open)..<close]) else { continue }
            if inodes.contains(ino) { out.append(pid) }
        }
        return out
    }
}
