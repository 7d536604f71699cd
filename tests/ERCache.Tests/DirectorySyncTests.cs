using ERCache.Diagnostics;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Snapshots;

namespace ERCache.Tests;

/// <summary>The directory of a snapshot or a removal log is synced after the file is created or renamed there, so the
/// file's name survives the machine's crash as its bytes do. Counts are the calling thread's, and the writers run on it.</summary>
public sealed class DirectorySyncTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-directory-sync-{Guid.NewGuid():N}");

    public DirectorySyncTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Linux_finds_the_calls_and_a_sync_of_a_directory_is_counted()
    {
        Assert.Equal(OperatingSystem.IsLinux(), DirectorySync.Supported);
        int before = DirectorySync.SyncsOnThisThread;

        DirectorySync.Flush(_directory);

        Assert.Equal(before + (DirectorySync.Supported ? 1 : 0), DirectorySync.SyncsOnThisThread);
    }

    [Fact]
    public void A_directory_that_cannot_be_opened_is_an_IOException_naming_it()
    {
        if (!DirectorySync.Supported)
        {
            return; // directories are synced on Linux only (the first test checks that this is the only case)
        }

        string missing = Path.Combine(_directory, "missing");

        var notFound = Assert.Throws<IOException>(() => DirectorySync.Flush(missing));

        Assert.Contains(missing, notFound.Message, StringComparison.Ordinal);
        Assert.Contains("errno 2)", notFound.Message, StringComparison.Ordinal); // ENOENT
    }

    [Fact]
    public void A_removal_log_syncs_its_directory_when_created_and_when_replaced_not_when_appended_or_reopened()
    {
        if (!DirectorySync.Supported)
        {
            return; // directories are synced on Linux only (the first test checks that this is the only case)
        }

        string path = Path.Combine(_directory, "m.removals.ercache-log");
        int start = DirectorySync.SyncsOnThisThread;

        using (var log = new RemovalLog(path, maxRecords: 4))
        {
            log.Append(1, 1_000, durable: true); // creates the file
            Assert.Equal(start + 1, DirectorySync.SyncsOnThisThread);
            log.Append(2, 1_000, durable: true);
            Assert.Equal(start + 1, DirectorySync.SyncsOnThisThread);

            log.DropBefore(500); // written whole and renamed
            Assert.Equal(start + 2, DirectorySync.SyncsOnThisThread);
        }

        using (var log = new RemovalLog(path, maxRecords: 4))
        {
            log.Append(3, 2_000);
            log.Append(4, 2_000); // four records: full
            Assert.Equal(start + 2, DirectorySync.SyncsOnThisThread); // opening a file that exists creates no name

            log.Append(5, 3_000); // replaced by one record for every user, renamed
            Assert.Equal(start + 3, DirectorySync.SyncsOnThisThread);
        }

        Assert.Equal(3_000, RemovalLog.Read(path)!.ClearedAt);
    }

    [Fact]
    public void A_snapshot_syncs_its_directory_after_the_rename_and_a_failed_write_does_not()
    {
        if (!DirectorySync.Supported)
        {
            return; // directories are synced on Linux only (the first test checks that this is the only case)
        }

        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create("Lru", capacity: 8_192, dimensions: 4, metrics);
        TierHelper.WriteUsers(tier, 0, 10);
        var identity = new SnapshotIdentity("m", "v1", 4, StorageFormat.Float32, TierKind.Direct);
        string path = Path.Combine(_directory, "m.direct.ercache");
        int start = DirectorySync.SyncsOnThisThread;

        long written = TierSnapshotFile.Write(tier, identity, path, nowUnixMs: 1_000, at => at, CancellationToken.None);

        Assert.Equal(10, written);
        Assert.True(File.Exists(path));
        Assert.Equal(start + 1, DirectorySync.SyncsOnThisThread);

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        TierHelper.WriteUsers(tier, 10, 5_000); // past the stride at which a write looks at its token
        Assert.ThrowsAny<OperationCanceledException>(() => TierSnapshotFile.Write(tier, identity, path, 2_000, at => at, cancelled.Token));
        Assert.Equal(start + 1, DirectorySync.SyncsOnThisThread);
    }
}
