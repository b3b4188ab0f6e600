// One operation per cluster at a time: `up` (CLI and supervisor, until the cluster is
// ready or rolled back), `down`, and a supervisor adopting a cluster each hold an
// exclusive flock on /run/lock/minik.<cluster>.lock. `down` during `up` waits for it, so
// neither ever reports what did not happen and no half-built cluster outlives a `down`.
//
// The lock belongs to the open file: `up` hands its descriptor to the supervisor it
// starts (as its stdin), so the lock is held while either of them lives. The last holder
// unlinks the file before closing it; a waiter that then wins a lock on the unlinked file
// notices (the path names another inode, or none) and tries again.
import Foundation

public final class ClusterLock {
    public let fd: Int32
    public let path: String

    public static func path(_ cluster: String) -> String {
        let dir = FileManager.default.fileExists(atPath: "/run/lock") ? "/run/lock" : "/run"
        return "\(dir)/minik.\(cluster).lock"
    }

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Takes the lock of `cluster`; nil when another holds it and `wait` runs out first
    /// (nil wait: do not wait at all). `waiting` is called once if it has to wait.
    public static func acquire(_ cluster: String, wait: Double? = nil, waiting: (() -> Void)? = nil) -> ClusterLock? {
        let path = path(cluster)
        let deadline = wait.map { Date().addingTimeInterval($0) }
        var told = false
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            if fd < 0 { return nil }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                if holds(fd, path: path) { return ClusterLock(fd: fd, path: path) }
                Foundation.close(fd) // won a lock on a file its holder has just unlinked
                continue
            }
            Foundation.close(fd)
            guard let deadline, Date() < deadline else { return nil }
            if !told { told = true; waiting?() }
            usleep(10_000)
        }
    }

    /// Adopts a lock already held through `fd` (a supervisor's stdin, from `up`).
    public static func inherited(_ cluster: String, fd: Int32) -> ClusterLock? {
        let path = path(cluster)
        // Locking an open file that already holds the lock succeeds at once.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0, holds(fd, path: path) else { return nil }
        return ClusterLock(fd: fd, path: path)
    }

    static func holds(_ fd: Int32, path: String) -> Bool {
        var a = stat(), b = stat()
        return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev
    }

    /// Lets go, leaving the file to holders of the same open file (the supervisor, for up).
    public func close() { closeFD() }

    /// Lets go and removes the file: only for the last holder.
    public func release() {
        unlink(path)
        closeFD()
    }

    private func closeFD() {
        // A supervisor's stdin stays a valid descriptor: /dev/null takes its place.
        if fd <= 2 {
            let null = open("/dev/null", O_RDWR | O_CLOEXEC)
            if null >= 0 { dup2(null, fd); _ = Foundation.close(null) }
        } else {
            _ = Foundation.close(fd)
        }
    }
}
