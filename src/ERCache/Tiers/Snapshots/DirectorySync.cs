using System.Runtime.InteropServices;

namespace ERCache.Tiers.Snapshots;

/// <summary>
/// Syncs a directory to disk, so that a file created or renamed in it is still there after the machine's crash. A
/// file's own sync (<see cref="FileStream.Flush(bool)"/>) covers its bytes, not the directory entry that names it: on
/// Linux a crash right after a rename can leave the old file under the name, or no file at all after a creation.
/// </summary>
/// <remarks>
/// On Linux, <c>open(O_RDONLY)</c> and <c>fsync</c> from the process's own C library (.NET cannot open a directory as a
/// file; <c>O_DIRECTORY</c> is left out because its value differs between x64 and arm64). Elsewhere nothing is done: Windows journals its directory entries, and macOS's
/// <c>fsync</c> is not a barrier to the disk anyway.
/// </remarks>
internal static unsafe class DirectorySync
{
    private const int OpenReadOnly = 0; // O_RDONLY, the same on every Linux architecture

    // From the process's own C library, looked up once; null where there is none to find.
    private static readonly delegate* unmanaged<byte*, int, int> Open = (delegate* unmanaged<byte*, int, int>)Find("open");
    private static readonly delegate* unmanaged<int, int> Fsync = (delegate* unmanaged<int, int>)Find("fsync");
    private static readonly delegate* unmanaged<int, int> Close = (delegate* unmanaged<int, int>)Find("close");

    /// <summary>Directory syncs made by the calling thread (for tests, which call the writers on their own thread).</summary>
    [ThreadStatic]
    internal static int SyncsOnThisThread;

    /// <summary>Whether this process can sync a directory (Linux with the three calls found).</summary>
    public static bool Supported => Open != null && Fsync != null && Close != null;

    /// <summary>Syncs <paramref name="directory"/> where the system needs it (see the remarks). Throws
    /// <see cref="IOException"/> naming the directory and the system's error when it cannot be opened or synced.</summary>
    public static void Flush(string directory)
    {
        if (!Supported)
        {
            return;
        }

        var path = Marshal.StringToCoTaskMemUTF8(Path.GetFullPath(directory));
        try
        {
            int descriptor = Open((byte*)path, OpenReadOnly);
            if (descriptor < 0)
            {
                throw Failure("open", directory);
            }

            int synced = Fsync(descriptor);
            var error = synced != 0 ? Failure("sync", directory) : null; // read errno before close can change it
            Close(descriptor);
            if (error is not null)
            {
                throw error;
            }

            SyncsOnThisThread++;
        }
        finally
        {
            Marshal.FreeCoTaskMem(path);
        }
    }

    private static IOException Failure(string step, string directory)
    {
        int errno = Marshal.GetLastSystemError();
        return new IOException($"Could not {step} the directory '{directory}' to sync it: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
    }

    private static nint Find(string name) =>
        OperatingSystem.IsLinux() && NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), name, out var address) ? address : 0;
}
