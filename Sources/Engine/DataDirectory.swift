import Foundation

/// The data directory as the commands see it: which files it has, and why it has none.
public enum DataDirectory {
    /// Is there an entry of that name? A dangling or looping link counts (reading it then says
    /// what is wrong with it) instead of being skipped as if the file were not there.
    public static func hasEntry(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Why `dir` offers no data files to `action` ("import", "validate"): it is missing, not a
    /// directory, cannot be read, or holds none.
    public static func noFilesMessage(_ dir: String, action: String) -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
            return "\(dir): no such data directory (run `os-migrate export` first, or pass --data-dir DIR)"
        }
        guard isDir.boolValue else { return "\(dir): not a directory (--data-dir names the data directory)" }
        if opendir(dir).map({ closedir($0); return true }) != true {
            let why = String(cString: strerror(errno)).lowercased()
            return "\(dir): cannot read the data directory (\(why))"
        }
        return "\(dir): no data files to \(action)"
    }
}
