using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using ERCache.Storage;

namespace ERCache.Tiers.Snapshots;

/// <summary>
/// The file one tier is snapshotted to: versioned, self-describing and checksummed, so that a truncated, corrupt,
/// foreign or older file is recognised before any entry of it is used.
/// </summary>
/// <remarks>
/// <para>Layout (little-endian): the magic <c>ERCSNAP1</c>; the format version (u16); the tier kind and storage format
/// (one byte each); dimensions and row bytes (i32 each); the model name and version (u16 length, UTF-8); the time of
/// the snapshot (Unix ms, i64). Then the entries, newest write first (files of earlier releases are in slot order,
/// and load as well): user id (i64), write time (Unix ms, i64), the row as the tier stores it. Then the trailer: the entry count (i64), the XxHash3 of every byte before the trailer (u64), and <c>ERCSEND1</c>.</para>
/// <para>Write times are wall clock, so a snapshot taken by one process is aged correctly by the next. A file is
/// written under a temporary name and renamed over the old one only when complete and flushed, then the directory is
/// synced (<see cref="DirectorySync"/>): a crash while writing leaves the previous snapshot (or none), never a partial
/// one under the real name, and a written snapshot stays written.</para>
/// </remarks>
internal static class TierSnapshotFile
{
    /// <summary>The version of the layout this library writes and reads.</summary>
    public const ushort FormatVersion = 1;

    private const int TrailerBytes = 24;
    private const int CancellationStride = 4096;
    private static readonly byte[] Magic = "ERCSNAP1"u8.ToArray();
    private static readonly byte[] EndMagic = "ERCSEND1"u8.ToArray();

    /// <summary>
    /// Writes every entry of <paramref name="tier"/> to <paramref name="path"/>, stamping each with its wall-clock write
    /// time (<paramref name="toUnixMs"/> converts the tier's stamps). Returns the entries written. On cancellation or
    /// failure the temporary file is deleted and the previous snapshot stays. <paramref name="beforeRename"/> runs once
    /// the file is complete, before it replaces the previous one (a test's hook).
    /// </summary>
    public static long Write(
        EmbeddingTier tier, SnapshotIdentity identity, string path, long nowUnixMs, Func<long, long> toUnixMs, CancellationToken cancellationToken,
        Action? beforeRename = null)
    {
        cancellationToken.ThrowIfCancellationRequested(); // a pass past its deadline starts no other tier
        string temporary = $"{path}.{Environment.ProcessId}.tmp";
        int rowBytes = StorageFormats.RowBytes(identity.Format, identity.Dimensions);
        long count = 0;
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                var hash = new XxHash3();
                var record = new byte[16 + rowBytes];
                void Put(ReadOnlySpan<byte> bytes)
                {
                    hash.Append(bytes);
                    file.Write(bytes);
                }

                Put(Header(identity, rowBytes, nowUnixMs));
                tier.ForEachEntryNewestFirst( // restored in file order, each as older than the last (EmbeddingTier.Restore)
                    (user, writtenAt, row) =>
                    {
                        if (++count % CancellationStride == 0)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                        }

                        BinaryPrimitives.WriteInt64LittleEndian(record, user);
                        BinaryPrimitives.WriteInt64LittleEndian(record.AsSpan(8), toUnixMs(writtenAt));
                        row.CopyTo(record.AsSpan(16));
                        Put(record);
                    });

                Span<byte> trailer = stackalloc byte[TrailerBytes];
                BinaryPrimitives.WriteInt64LittleEndian(trailer, count);
                BinaryPrimitives.WriteUInt64LittleEndian(trailer[8..], hash.GetCurrentHashAsUInt64());
                EndMagic.CopyTo(trailer[16..]);
                file.Write(trailer);
                file.Flush(flushToDisk: true);
            }

            beforeRename?.Invoke();
            File.Move(temporary, path, overwrite: true);
            DirectorySync.Flush(Path.GetDirectoryName(Path.GetFullPath(path))!); // the rename too survives a crash, before the removal log is shortened
            return count;
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    /// <summary>
    /// Checks the whole file (layout, identity, length, checksum) before anything of it is used, then calls
    /// <paramref name="entry"/> for each entry with its wall-clock write time and its row in the tier's format.
    /// Returns null when the file was loaded, else why it was refused (nothing was handed out then).
    /// </summary>
    public static string? Load(string path, SnapshotIdentity expected, Action<long, long, ReadOnlySpan<byte>> entry, CancellationToken cancellationToken)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        int rowBytes = StorageFormats.RowBytes(expected.Format, expected.Dimensions);
        if (file.Length < Magic.Length + TrailerBytes)
        {
            return $"truncated: {file.Length} bytes";
        }

        if (ReadHeader(file, expected, rowBytes, out _) is { } refused)
        {
            return refused;
        }

        long entriesStart = file.Position;
        long entryBytes = 16 + rowBytes;
        long body = file.Length - entriesStart - TrailerBytes;
        if (body < 0 || body % entryBytes != 0)
        {
            return $"truncated or padded: {file.Length} bytes is not a header, whole entries of {entryBytes} bytes and a trailer";
        }

        Span<byte> trailer = stackalloc byte[TrailerBytes];
        file.Position = file.Length - TrailerBytes;
        file.ReadExactly(trailer);
        if (!trailer[16..].SequenceEqual(EndMagic))
        {
            return "truncated: the trailer is missing";
        }

        long count = BinaryPrimitives.ReadInt64LittleEndian(trailer);
        if (count != body / entryBytes)
        {
            return $"truncated: the trailer counts {count} entries, the file holds {body / entryBytes}";
        }

        // First pass: the checksum of everything before the trailer; nothing is used unless it matches.
        file.Position = 0;
        var hash = new XxHash3();
        var buffer = new byte[1 << 20];
        long left = file.Length - TrailerBytes;
        while (left > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int read = file.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read == 0)
            {
                return "truncated while reading";
            }

            hash.Append(buffer.AsSpan(0, read));
            left -= read;
        }

        if (hash.GetCurrentHashAsUInt64() != BinaryPrimitives.ReadUInt64LittleEndian(trailer[8..]))
        {
            return "corrupt: the checksum does not match";
        }

        // Second pass: the entries.
        file.Position = entriesStart;
        var record = new byte[entryBytes];
        for (long i = 0; i < count; i++)
        {
            if (i % CancellationStride == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }

            file.ReadExactly(record);
            entry(BinaryPrimitives.ReadInt64LittleEndian(record), BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(8)), record.AsSpan(16));
        }

        return null;
    }

    private static byte[] Header(SnapshotIdentity identity, int rowBytes, long nowUnixMs)
    {
        using var header = new MemoryStream();
        using var writer = new BinaryWriter(header, Encoding.UTF8);
        writer.Write(Magic);
        writer.Write(FormatVersion);
        writer.Write((byte)identity.Tier);
        writer.Write((byte)identity.Format);
        writer.Write(identity.Dimensions);
        writer.Write(rowBytes);
        WriteText(writer, identity.Model);
        WriteText(writer, identity.Version);
        writer.Write(nowUnixMs);
        writer.Flush();
        return header.ToArray();
    }

    /// <summary>
    /// When the snapshot at <paramref name="path"/> was taken (Unix ms; every entry in it was written at or before then),
    /// if the file exists and its header describes <paramref name="expected"/>; null otherwise: only such a file can be
    /// restored. Reads the header alone.
    /// </summary>
    public static long? TakenAt(string path, SnapshotIdentity expected)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return ReadHeader(file, expected, StorageFormats.RowBytes(expected.Format, expected.Dimensions), out long takenAt) is null ? takenAt : null;
    }

    /// <summary>Reads and checks the header; null when it describes <paramref name="expected"/>, else why not.
    /// <paramref name="takenAt"/> is the snapshot's time (0 when the header was refused before it).</summary>
    private static string? ReadHeader(FileStream file, SnapshotIdentity expected, int rowBytes, out long takenAt)
    {
        takenAt = 0;
        try
        {
            using var reader = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
            {
                return "foreign: not an ERCache snapshot";
            }

            ushort version = reader.ReadUInt16();
            if (version != FormatVersion)
            {
                return $"format version {version}, this library reads version {FormatVersion}";
            }

            var tier = (TierKind)reader.ReadByte();
            var format = (StorageFormat)reader.ReadByte();
            int dimensions = reader.ReadInt32();
            int storedRowBytes = reader.ReadInt32();
            string model = ReadText(reader);
            string modelVersion = ReadText(reader);
            takenAt = reader.ReadInt64(); // the entries carry their own times; this bounds them
            var found = new SnapshotIdentity(model, modelVersion, dimensions, format, tier);
            if (!string.Equals(model, expected.Model, StringComparison.OrdinalIgnoreCase) || !string.Equals(modelVersion, expected.Version, StringComparison.Ordinal) ||
                dimensions != expected.Dimensions || format != expected.Format || tier != expected.Tier || storedRowBytes != rowBytes)
            {
                return $"taken for {found}, not {expected}";
            }

            return null;
        }
        catch (EndOfStreamException)
        {
            return "truncated: the header is incomplete";
        }
        catch (DecoderFallbackException)
        {
            return "corrupt: the header's names are not text";
        }
    }

    private static void WriteText(BinaryWriter writer, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        writer.Write(checked((ushort)bytes.Length));
        writer.Write(bytes);
    }

    private static string ReadText(BinaryReader reader)
    {
        int length = reader.ReadUInt16();
        var bytes = reader.ReadBytes(length);
        return bytes.Length == length ? new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes) : throw new EndOfStreamException();
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
