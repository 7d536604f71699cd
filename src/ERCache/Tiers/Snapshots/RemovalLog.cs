using System.Buffers.Binary;

namespace ERCache.Tiers.Snapshots;

/// <summary>
/// One model's record of the removals, clears and pushes made since its snapshots were last written, kept beside them.
/// A restart after a crash (no graceful stop, so no snapshot taken after those operations) then restores no entry they
/// removed or superseded: an entry written at or before a record for its user, or for every user, is skipped.
/// </summary>
/// <remarks>
/// <para>Layout: the magic <c>ERCRLOG1</c>, then records of 16 bytes, little-endian: the user id (i64;
/// <see cref="EveryUser"/> for a clear) and the wall-clock time of the operation (Unix ms, i64; the caller stamps it no
/// earlier than the newest snapshot, so that a clock set back cannot leave an entry of it uncovered). A torn last record (a
/// crash mid-append) is ignored.</para>
/// <para>Each record is written before the operation touches the tiers: a removal's or a clear's synced to disk, so it
/// survives the machine's crash too; a push's only flushed to the operating system (it survives the process's crash),
/// since pushes may come in bulk and a lost one brings back an older vector, not a removed user. The directory is
/// synced when the file is created or replaced (<see cref="DirectorySync"/>), so the file's name survives as its
/// records do. Once all of a
/// model's tiers are written again, the records older than that snapshot, less a margin, are dropped
/// (<see cref="DropBefore"/>); a log half full asks for that write at once. A log that reaches its record limit all
/// the same (more than a snapshot's margin of operations) is replaced by one record for every user: nothing written
/// before then is restored, and its size stays bounded.</para>
/// </remarks>
internal sealed class RemovalLog : IDisposable
{
    /// <summary>The user id a clear records: every user of the model.</summary>
    public const long EveryUser = long.MinValue;

    /// <summary>Records a log holds at most (16 bytes each, 4 MB) before it is replaced by one for every user.</summary>
    public const int DefaultMaxRecords = 262_144;

    private const int RecordBytes = 16;
    private static readonly byte[] Magic = "ERCRLOG1"u8.ToArray();

    private readonly Lock _sync = new();
    private readonly int _maxRecords;
    private readonly Action? _halfFull;
    private FileStream? _file; // opened at the first append, under _sync
    private long _records;
    private bool _disposed;

    /// <param name="path">The log's file.</param>
    /// <param name="maxRecords">The records it holds at most before one for every user replaces them.</param>
    /// <param name="halfFull">Called (outside the log's lock) when an append brings it to half of
    /// <paramref name="maxRecords"/>: writing the model's snapshots then shortens it, before a bulk of pushes or removals
    /// fills it and the every-user record makes the snapshots useless.</param>
    public RemovalLog(string path, int maxRecords = DefaultMaxRecords, Action? halfFull = null)
    {
        Path = path;
        _maxRecords = maxRecords;
        _halfFull = halfFull;
    }

    /// <summary>The log's file.</summary>
    public string Path { get; }

    /// <summary>Records synced to disk since the log was opened (for tests).</summary>
    internal long SyncedAppends { get; private set; }

    /// <summary>Appends a record and flushes it to the operating system; with <paramref name="durable"/> to the disk too,
    /// so that it survives the machine's crash. Throws <see cref="IOException"/> or
    /// <see cref="UnauthorizedAccessException"/> when the file cannot be written; the caller must then make sure no
    /// snapshot of the model is restored.</summary>
    public void Append(long userId, long unixMs, bool durable = false)
    {
        if (AppendLocked(userId, unixMs, durable))
        {
            _halfFull?.Invoke();
        }
    }

    /// <summary><see cref="Append"/> under the lock; returns whether it brought the log to half full.</summary>
    private bool AppendLocked(long userId, long unixMs, bool durable)
    {
        lock (_sync)
        {
            ObjectDisposedException.ThrowIf(_disposed, this); // an operation racing the cache's disposal
            var file = _file ??= Open(unixMs);
            if (_records >= _maxRecords)
            {
                // Bounded: one record for every user replaces them all (nothing written before now is restored), in a
                // file written whole and renamed, so that a crash meanwhile leaves the old log or the new one.
                ReplaceWith([(EveryUser, unixMs)]);
                SyncedAppends += durable ? 1 : 0;
                return false;
            }

            WriteRecord(file, userId, unixMs);
            file.Flush(flushToDisk: durable);
            SyncedAppends += durable ? 1 : 0;
            return ++_records == _maxRecords / 2;
        }
    }

    /// <summary>Drops the records made before <paramref name="unixMs"/> (the file is rewritten under a temporary name and
    /// renamed). Throws as <see cref="Append"/> does; the records are then kept.</summary>
    public void DropBefore(long unixMs)
    {
        lock (_sync)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // A file that is not a log was never appended to by this process (the first append starts it again): its
            // records, whatever they were, are older than the snapshot just written.
            ReplaceWith(Read(Path) is { IsUnreadable: false } records ? records.Since(unixMs) : []);
        }
    }

    /// <summary>Replaces the file by one holding <paramref name="records"/>, written under a temporary name, synced and
    /// renamed over it; the next append opens it again. Under the lock.</summary>
    private void ReplaceWith(List<(long UserId, long UnixMs)> records)
    {
        _file?.Dispose();
        _file = null;
        Directory.CreateDirectory(DirectoryOf(Path)); // as the first append does: a rewrite may come before any append
        string temporary = $"{Path}.{Environment.ProcessId}.tmp";
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(Magic);
            foreach (var (user, at) in records)
            {
                WriteRecord(file, user, at);
            }

            file.Flush(flushToDisk: true);
        }

        File.Move(temporary, Path, overwrite: true);
        DirectorySync.Flush(DirectoryOf(Path)); // the renamed log survives the machine's crash, as its records do
    }

    /// <summary>The records of the log at <paramref name="path"/>: null when there is none; a file that is not such a log
    /// reads as one record for every user at <see cref="long.MaxValue"/> (nothing can be trusted, so nothing is restored).</summary>
    public static RemovalRecords? Read(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        if (new FileInfo(path).Length > Magic.Length + ((DefaultMaxRecords + 1L) * RecordBytes))
        {
            return RemovalRecords.Unreadable; // longer than a log can grow: not one (and not read into memory)
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length && IsStart(bytes))
        {
            // Created and its magic not written yet (an append racing this read), or cut there by a crash: no record yet.
            return new RemovalRecords();
        }

        if (bytes.Length < Magic.Length || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            return RemovalRecords.Unreadable;
        }

        var records = new RemovalRecords();
        for (int offset = Magic.Length; offset + RecordBytes <= bytes.Length; offset += RecordBytes) // a torn last record is left out
        {
            records.Add(BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(offset)), BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(offset + 8)));
        }

        return records;
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _disposed = true;
            _file?.Dispose();
            _file = null;
        }
    }

    /// <summary>Opens the file for appending, writing the magic into a new or empty one. A file that is not such a log
    /// is started again with one record for every user at <paramref name="unixMs"/>: its records cannot be read, so
    /// nothing written before now may be restored.</summary>
    private FileStream Open(long unixMs)
    {
        Directory.CreateDirectory(DirectoryOf(Path));
        bool created = !File.Exists(Path);
        var file = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            if (created)
            {
                DirectorySync.Flush(DirectoryOf(Path)); // a new log's name survives the machine's crash, as its records do
            }

            Span<byte> magic = stackalloc byte[Magic.Length];
            int read = file.ReadAtLeast(magic, Magic.Length, throwOnEndOfStream: false);
            if (read < Magic.Length || !magic.SequenceEqual(Magic))
            {
                bool started = IsStart(magic[..read]); // created and cut before its magic was whole: no record was lost
                file.SetLength(0);
                file.Write(Magic);
                if (!started)
                {
                    WriteRecord(file, EveryUser, unixMs);
                }
            }

            long whole = (file.Length - Magic.Length) / RecordBytes;
            file.SetLength(Magic.Length + (whole * RecordBytes)); // a torn last record goes
            file.Position = file.Length;
            _records = whole;
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="bytes"/>, shorter than the magic, are how a log's file starts (empty included).</summary>
    private static bool IsStart(ReadOnlySpan<byte> bytes) => Magic.AsSpan(0, bytes.Length).SequenceEqual(bytes);

    private static string DirectoryOf(string path) => System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;

    /// <summary>Writes one record at the file's position (the layout in the remarks).</summary>
    private static void WriteRecord(FileStream file, long userId, long unixMs)
    {
        Span<byte> record = stackalloc byte[RecordBytes];
        BinaryPrimitives.WriteInt64LittleEndian(record, userId);
        BinaryPrimitives.WriteInt64LittleEndian(record[8..], unixMs);
        file.Write(record);
    }
}
