// One operation per cluster at a time: `up` (CLI and supervisor, until the cluster is
// ready or rolled back), `down`, and a supervisor adopting a cluster each hold an
// exclusive flock on /run/minik-locks/<cluster>.lock. `down` during `up` waits for it, so
// neither ever reports what did not happen and no half-built cluster outlives a `down`.
//
// The directory is root's own (0700, not a symlink), outside /run/minik (which the last
// `down` unmounts): in a world-writable directory such as /run/lock any user could plant
// the file and block every `up` and `down` of that name.
//
// The lock belongs to the open file: `up` hands its descriptor to the supervisor it
// starts (as its stdin), so the lock is held while either of them lives. Only a holder
// that took the lock itself removes the file (before closing it), and the directory when
// it is empty; a supervisor that inherited it only closes it. A waiter that wins a lock on
// a file just unlinked notices (the path names another inode, or none) and tries again.
import Foundation

public final class ClusterLock {
    public let fd: Int32
    public let path: String
    /// Held through a descriptor `up` handed over: never unlinked by this holder.
    public let inheritedFromUp: Bool

    public static let directory = "/run/minik-locks"

    public static func path(_ cluster: String) -> String { "\(directory)/\(cluster).lock" }

    init(fd: Int32, path: String, inherited: Bool) {
        self.fd = fd
        self.path = path
        self.inheritedFromUp = inherited
    }

    /// The lock directory, made if missing; false when it is not root's own 0700 directory.
    static func prepareDirectory() -> Bool {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { return false }
        var st = stat()
        guard lstat(directory, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == 0 else { return false }
        if st.st_mode & 0o077 != 0 { chmod(directory, 0o700) }
        return true
    }

    /// Takes the lock of `cluster`; nil when another holds it and `wait` runs out first
    /// (nil wait: do not wait at all). `waiting` is called once if it has to wait.
    public static func acquire(_ cluster: String, wait: Double? = nil, waiting: (() -> Void)? = nil) -> ClusterLock? {
        let path = path(cluster)
        let deadline = wait.map { Date().addingTimeInterval($0) }
        var told = false
        while true {
            guard prepareDirectory() else { return nil }
            let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 {
                if errno == ENOENT { continue } // the directory went with its last lock
                return nil
            }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                if holds(fd, path: path) { return ClusterLock(fd: fd, path: path, inherited: false) }
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
        return ClusterLock(fd: fd, path: path, inherited: true)
    }

    static func holds(_ fd: Int32, path: String) -> Bool {
        var a = stat(), b = stat()
        return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev
    }

    /// Lets go, leaving the file to holders of the same open file (the supervisor, for up).
    public func close() { closeFD() }

    /// Lets go for good: a holder that took the lock removes its file (and the directory
    /// when no other lock is in it); one that inherited it from `up` only closes it, `up`
    /// removes it after its own clean-up.
    public func release() {
        if !inheritedFromUp && Self.holds(fd, path: path) {
            unlink(path)
            rmdir(Self.directory)
        }
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
