using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using ERCache.Diagnostics;
using ERCache.Models;
using ERCache.Tiers;
using ERCache.Tiers.Snapshots;

namespace ERCache.Benchmarks;

/// <summary>
/// The warm restart's cost: writing a full tier of 1,000,000 entries of 256 Float16 dimensions (written in an order
/// unrelated to their slots) to its snapshot, and
/// restoring it into an empty tier (checksum pass, then decode and insert), against the I/O floor of the same bytes:
/// writing them with one <see cref="FileStream"/>, and reading them back. Each operation is one whole file; few
/// iterations (Monitoring: seconds per operation, no pilot).
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5)]
[MemoryDiagnoser]
public class SnapshotBenchmarks
{
    private const int Dimensions = 256;
    private readonly float[] _vector = Enumerable.Range(0, Dimensions).Select(i => MathF.Sin(i)).ToArray();
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-snapshot-bench-{Environment.ProcessId}");
    private ERCacheMetrics _metrics = null!;
    private EmbeddingTier _full = null!;
    private EmbeddingTier _empty = null!;
    private SnapshotIdentity _identity;
    private string _path = null!;
    private byte[] _chunk = null!;
    private long _bytes;

    [Params(1_000_000)]
    public int Entries { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        Directory.CreateDirectory(_directory);
        _metrics = new ERCacheMetrics(null);
        // Stamps in no relation to the slots, as in a tier that has evicted for a while: the snapshot lists its entries
        // newest first, so it sorts them and copies the rows out of slot order. 7,919 is prime and does not divide the
        // entries, so the stamps are a permutation of 0..Entries-1.
        _full = FullTier.Create(Entries, "Lru", "Float16", _vector, _metrics, writtenAt: u => u * 7_919 % Entries);
        _identity = new SnapshotIdentity("m", "1", Dimensions, StorageFormat.Float16, TierKind.Direct);
        _path = Path.Combine(_directory, "m.direct.ercache-snapshot");
        WriteSnapshot();
        _bytes = new FileInfo(_path).Length;
        _chunk = new byte[1 << 20];
        Console.WriteLine($"// Snapshot of {Entries:N0} entries: {_bytes:N0} bytes ({(double)_bytes / Entries:F1} per entry).");
    }

    [IterationSetup(Target = nameof(RestoreSnapshot))]
    public void EmptyTier() => _empty = FullTier.Create(0, "Lru", "Float16", _vector, _metrics, capacity: Entries);

    [GlobalCleanup]
    public void Cleanup()
    {
        Directory.Delete(_directory, recursive: true);
        _metrics.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Write the same bytes (I/O floor)")]
    public long WriteBytes()
    {
        string path = Path.Combine(_directory, "floor.bin");
        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            for (long left = _bytes; left > 0; left -= _chunk.Length)
            {
                file.Write(_chunk, 0, (int)Math.Min(_chunk.Length, left));
            }

            file.Flush(flushToDisk: true);
        }

        return new FileInfo(path).Length;
    }

    [Benchmark(Description = "Write the snapshot")]
    public long WriteSnapshot() => TierSnapshotFile.Write(_full, _identity, _path, 0, writtenAt => writtenAt, CancellationToken.None);

    [Benchmark(Description = "Read the file's bytes (I/O floor)")]
    public long ReadBytes()
    {
        using var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        long total = 0;
        int read;
        while ((read = file.Read(_chunk, 0, _chunk.Length)) > 0)
        {
            total += read;
        }

        return total;
    }

    [Benchmark(Description = "Restore the snapshot into an empty tier")]
    public long RestoreSnapshot()
    {
        var outcome = SnapshotKeeper.Restore(_empty, _path, _identity, TimeProvider.System, ttlNow: 0, ttl: long.MaxValue, _ => false, CancellationToken.None);
        return outcome.Refused is null ? outcome.Loaded : throw new InvalidOperationException(outcome.Refused);
    }
}
