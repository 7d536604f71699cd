using ERCache.Tiers.Snapshots;

namespace ERCache.Tests;

/// <summary>The removal log's file: records that survive a reopen, a torn last record left out, a bounded size, and the
/// records older than a snapshot dropped.</summary>
public sealed class RemovalLogTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-removal-log-{Guid.NewGuid():N}");

    private string LogPath => Path.Combine(_directory, "m.removals.ercache-log");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void Records_survive_a_reopen_and_cover_what_was_written_at_or_before_them()
    {
        using (var log = new RemovalLog(LogPath))
        {
            log.Append(7, 1_000);
            log.Append(7, 900); // an older record does not lower the latest
            log.Append(8, 2_000);
        }

        using (var log = new RemovalLog(LogPath))
        {
            log.Append(9, 3_000); // appended after the records already there
        }

        var records = RemovalLog.Read(LogPath)!;
        Assert.Equal(3, records.Users);
        Assert.True(records.Covers(7, 1_000));
        Assert.False(records.Covers(7, 1_001));
        Assert.True(records.Covers(9, 10));
        Assert.False(records.Covers(10, 0));
        Assert.Equal(long.MinValue, records.ClearedAt);
        Assert.Null(RemovalLog.Read(Path.Combine(_directory, "none")));
    }

    [Fact]
    public void A_torn_last_record_is_left_out_and_cut_before_the_next_append()
    {
        using (var log = new RemovalLog(LogPath))
        {
            log.Append(7, 1_000);
        }

        File.AppendAllText(LogPath, "torn"); // a crash in the middle of a record
        Assert.Equal(1, RemovalLog.Read(LogPath)!.Users);

        using (var log = new RemovalLog(LogPath))
        {
            log.Append(8, 2_000);
        }

        Assert.Equal(8 + (2 * 16), new FileInfo(LogPath).Length);
        Assert.True(RemovalLog.Read(LogPath)!.Covers(8, 2_000));
    }

    [Fact]
    public void A_clear_covers_every_user_written_before_it()
    {
        using var log = new RemovalLog(LogPath);
        log.Append(RemovalLog.EveryUser, 5_000);

        var records = RemovalLog.Read(LogPath)!;
        Assert.True(records.Covers(123, 5_000));
        Assert.False(records.Covers(123, 5_001));
    }

    [Fact]
    public void A_full_log_is_replaced_by_one_record_for_every_user()
    {
        using var log = new RemovalLog(LogPath, maxRecords: 4);
        for (int user = 0; user < 4; user++)
        {
            log.Append(user, 1_000 + user);
        }

        log.Append(99, 2_000);

        Assert.Equal(8 + 16, new FileInfo(LogPath).Length);
        var records = RemovalLog.Read(LogPath)!;
        Assert.Equal(0, records.Users);
        Assert.Equal(2_000, records.ClearedAt); // nothing written before it is restored, user 99 included

        log.Append(100, 3_000); // the log goes on after it
        Assert.True(RemovalLog.Read(LogPath)!.Covers(100, 3_000));
        Assert.Equal(8 + (2 * 16), new FileInfo(LogPath).Length);
    }

    [Fact]
    public void Half_full_asks_once_per_fill_for_the_snapshots_that_shorten_it()
    {
        int asked = 0;
        using var log = new RemovalLog(LogPath, maxRecords: 8, halfFull: () => asked++);
        for (int user = 0; user < 3; user++)
        {
            log.Append(user, 1_000);
        }

        Assert.Equal(0, asked);
        log.Append(3, 1_000); // the fourth of eight
        Assert.Equal(1, asked);
        for (int user = 4; user < 8; user++)
        {
            log.Append(user, 1_000);
        }

        Assert.Equal(1, asked);
        log.Append(8, 2_000); // full: replaced by one record for every user, then filling again
        for (int user = 9; user < 12; user++)
        {
            log.Append(user, 3_000);
        }

        Assert.Equal(2, asked);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void A_file_cut_before_its_magic_was_whole_holds_no_record_and_is_started_without_a_clear(int bytes)
    {
        // An append that creates the log races a load that reads it: the load can find the file before its magic. The
        // same file is what a crash then leaves. Read as unreadable, it would keep the whole snapshot from being restored.
        Directory.CreateDirectory(_directory);
        File.WriteAllBytes(LogPath, "ERCRLOG1"u8[..bytes].ToArray());

        var records = RemovalLog.Read(LogPath)!;
        Assert.False(records.IsUnreadable);
        Assert.Equal((0, long.MinValue), (records.Users, records.ClearedAt));

        using (var log = new RemovalLog(LogPath))
        {
            log.Append(5, 3_000);
        }

        records = RemovalLog.Read(LogPath)!;
        Assert.Equal((1, long.MinValue), (records.Users, records.ClearedAt));
        Assert.True(records.Covers(5, 3_000));

        File.WriteAllBytes(LogPath, "ERCRLOX"u8[..Math.Max(bytes, 7)].ToArray()); // not how a log starts
        Assert.True(RemovalLog.Read(LogPath)!.IsUnreadable);
    }

    [Fact]
    public void A_file_that_is_not_a_log_reads_as_covering_everything_and_is_started_again_from_a_clear()
    {
        Directory.CreateDirectory(_directory);
        File.WriteAllText(LogPath, "something else entirely");
        Assert.True(RemovalLog.Read(LogPath)!.IsUnreadable);
        Assert.True(RemovalLog.Read(LogPath)!.Covers(1, long.MaxValue - 1));

        using var log = new RemovalLog(LogPath);
        log.Append(5, 3_000);

        var records = RemovalLog.Read(LogPath)!;
        Assert.False(records.IsUnreadable);
        Assert.Equal(3_000, records.ClearedAt); // its records are lost, so everything before now is covered
        Assert.True(records.Covers(5, 3_000));
    }

    [Fact]
    public void A_disposed_log_refuses_to_append_or_rewrite_rather_than_open_its_file_again()
    {
        var log = new RemovalLog(LogPath);
        log.Append(1, 1_000);
        log.Dispose();

        Assert.Throws<ObjectDisposedException>(() => log.Append(2, 2_000));
        Assert.Throws<ObjectDisposedException>(() => log.DropBefore(0));
        Assert.Equal(8 + 16, new FileInfo(LogPath).Length);
    }

    [Fact]
    public void A_file_longer_than_a_log_can_grow_is_not_read()
    {
        Directory.CreateDirectory(_directory);
        using (var file = File.Create(LogPath))
        {
            file.Write("ERCRLOG1"u8);
            file.SetLength(8 + ((RemovalLog.DefaultMaxRecords + 2L) * 16));
        }

        Assert.True(RemovalLog.Read(LogPath)!.IsUnreadable);
    }

    [Fact]
    public void A_rewrite_before_any_append_creates_the_directory_as_an_append_would()
    {
        using var log = new RemovalLog(LogPath);
        Assert.False(Directory.Exists(_directory));

        log.DropBefore(2_000); // a rewrite that comes first: an empty log, not a missing directory's exception
        Assert.Equal(0, RemovalLog.Read(LogPath)!.Users);
        log.Append(1, 3_000);

        Assert.True(RemovalLog.Read(LogPath)!.Covers(1, 3_000));
        Assert.Empty(Directory.GetFiles(_directory, "*.tmp"));
    }

    [Fact]
    public void Dropping_before_a_time_keeps_the_latest_record_of_each_user_from_then_on()
    {
        using var log = new RemovalLog(LogPath);
        log.Append(1, 1_000);
        log.Append(2, 1_000);
        log.Append(2, 3_000);
        log.Append(RemovalLog.EveryUser, 1_500);

        log.DropBefore(2_000);
        log.Append(3, 4_000); // the log goes on after the rewrite

        var records = RemovalLog.Read(LogPath)!;
        Assert.Equal(2, records.Users);
        Assert.False(records.Covers(1, 0));
        Assert.True(records.Covers(2, 3_000));
        Assert.True(records.Covers(3, 4_000));
        Assert.Equal(long.MinValue, records.ClearedAt);
        Assert.Empty(Directory.GetFiles(_directory, "*.tmp"));
    }
}
