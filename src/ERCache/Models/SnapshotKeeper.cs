using System.Diagnostics;
using System.Text;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Storage;
using ERCache.Tiers;
using ERCache.Tiers.Snapshots;
using Microsoft.Extensions.Logging;

namespace ERCache.Models;

/// <summary>
/// The warm restart (DESIGN §2 rule 10): loads each model version's tier snapshots in the background at start-up and
/// writes them at a graceful stop and every <c>Snapshots:Interval</c>. One file per model and tier; the file names
/// the model, version, dimensions and format it was taken for, and a file for anything else is skipped with a log line.
/// </summary>
/// <remarks>
/// The load never blocks a request: requests are served from whatever is in the tiers while it runs. An entry is
/// restored only when the tier holds nothing newer for the user and the user was not removed since the load began
/// (both checked under the tier's write lock, see <see cref="EmbeddingTier.TryWriteNewer"/>). Beside a regional store
/// whose invalidation channel is on, a snapshot's rows are not restored: other hosts' removals and pushes made while
/// this host was down never reached it (rule 11). The load then waits for the channel's subscription and copies the
/// store's values of the snapshot's users instead (<see cref="ModelRuntime.PrefetchRegionalAsync"/>).
/// </remarks>
internal sealed class SnapshotKeeper : IDisposable
{
    /// <summary>A restored entry stamped further in the future than this (clocks of two processes disagree) is skipped.</summary>
    private static readonly TimeSpan FutureTolerance = TimeSpan.FromMinutes(1);

    /// <summary>How much older than a snapshot a removal record must be before the snapshot's write drops it.</summary>
    internal static readonly TimeSpan RemovalLogMargin = TimeSpan.FromMinutes(1);

    private readonly SnapshotOptions _options;
    private readonly ModelRegistry _registry;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RegionalInvalidator? _invalidator; // set: the store, not the snapshots' rows, is the truth
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ITimer? _timer;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, RemovalLog> _removalLogs = new(StringComparer.OrdinalIgnoreCase);

    // Per model, the time of the newest snapshot that may be restored (Unix ms): a removal's record is stamped no
    // earlier, so it covers every entry of such a snapshot even when the wall clock has stepped back since.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _newestSnapshot = new(StringComparer.OrdinalIgnoreCase);

    // What went wrong, for the health check: the last write pass's failures, and per model a removal that could not
    // be logged (its snapshots were deleted, and a log that cannot be read restores nothing) until its log is written
    // again.
    private IReadOnlyList<string> _writeProblems = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _removalLogProblems = new(StringComparer.OrdinalIgnoreCase);

    // Per model, how many times its snapshots were deleted for an unlogged removal (at the failed record and again
    // once the removal changed the tiers): a write whose walk overlapped one deletes its own file, since the entry it
    // may have written before the removal is in no log that would drop it at the restore. And how many records failed.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _deletions = new(StringComparer.OrdinalIgnoreCase);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _unloggedRemovals = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Starts the load at once, in the background.</summary>
    /// <param name="options">The snapshots' settings.</param>
    /// <param name="registry">The models.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">Where what happens is logged.</param>
    /// <param name="invalidator">The invalidation channel's end when the cache has one: the load then prefetches the
    /// snapshots' users from the regional store instead of restoring their rows.</param>
    public SnapshotKeeper(SnapshotOptions options, ModelRegistry registry, TimeProvider time, ILogger logger, RegionalInvalidator? invalidator = null)
    {
        _options = options;
        _registry = registry;
        _time = time;
        _logger = logger;
        _invalidator = invalidator;

        // Removals are tracked from now, before any request can run; the load then starts in the background.
        var states = registry.States.ToArray();
        foreach (var state in states)
        {
            state.BeginRestore();
            NoteSnapshotsOnDisk(state);
        }

        Loaded = Task.Run(() => LoadAllAsync(states));
        if (options.Interval is { } interval)
        {
            _timer = time.CreateTimer(static s => _ = ((SnapshotKeeper)s!).WriteAllAsync(skipIfBusy: true), this, interval, interval);
        }
    }

    /// <summary>Completes when the start-up load has finished, timed out or failed (never faults).</summary>
    public Task Loaded { get; }

    /// <summary>Runs for each tier file written, once it is complete and before it replaces the previous one
    /// (tests).</summary>
    internal Action<string>? BeforeRename { get; set; }

    /// <summary>Why the next restart may start cold, for the health check: each failure of the last write pass, and
    /// each model whose removal could not be logged, until its log is written again. Empty when all is
    /// well.</summary>
    public IReadOnlyList<string> Problems => [.. Volatile.Read(ref _writeProblems), .. _removalLogProblems.Values];

    /// <summary>The directory's file for one tier of a model: the name made safe for any file system.</summary>
    public static string PathOf(string directory, string model, TierKind tier) =>
        Path.Combine(directory, $"{FileStem(model)}.{tier.ToString().ToLowerInvariant()}.ercache-snapshot");

    /// <summary>The directory's removal log of a model (see <see cref="RemovalLog"/>).</summary>
    public static string RemovalLogPathOf(string directory, string model) => Path.Combine(directory, $"{FileStem(model)}.removals.ercache-log");

    /// <summary>The removal log of a model, once an operation wrote to it (for tests).</summary>
    internal RemovalLog? RemovalLogOf(string model) => _removalLogs.GetValueOrDefault(model);

    /// <summary>
    /// Records that <paramref name="userId"/>'s entries of <paramref name="model"/> (every user's, with
    /// <see cref="RemovalLog.EveryUser"/>) are removed or superseded as of now (or of the newest snapshot, should the wall
    /// clock read earlier), before the operation touches the tiers: a snapshot written before it is then never restored
    /// over it, even after a crash. <paramref name="durable"/> (a
    /// removal or clear) syncs the record to disk; a push's is flushed to the operating system only (see
    /// <see cref="RemovalLog"/>). When the record cannot be written, the model's snapshots are deleted instead (a cold
    /// start rather than a removed user served), an error is logged, and this returns false: the caller then calls
    /// <see cref="SettleUnlogged"/> once the operation has changed the tiers.
    /// </summary>
    public bool NoteRemoved(string model, long userId, bool durable)
    {
        // Stamped no earlier than the newest snapshot: every entry of it was written before this removal, even if the
        // wall clock has stepped back since and now reads earlier than some of their stamps.
        long now = Math.Max(_time.GetUtcNow().ToUnixTimeMilliseconds(), _newestSnapshot.GetValueOrDefault(model, long.MinValue));
        var log = LogOf(model);
        string? problem = _removalLogProblems.GetValueOrDefault(model); // read before the append: see ClearProblem
        try
        {
            log.Append(userId, now, durable);
            ClearProblem(model, problem);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.RemovalLogFailed(_logger, "write", log.Path, model, ex);
            DeleteSnapshots(model);
            int unlogged = _unloggedRemovals.AddOrUpdate(model, 1, static (_, n) => n + 1);
            _removalLogProblems[model] =
                $"{unlogged} removal(s) of model '{model}' could not be logged in {log.Path} (last: {ex.Message}), so its snapshots were deleted: the next restart starts it cold";
            return false;
        }
    }

    /// <summary>An operation whose record <see cref="NoteRemoved"/> could not write has changed the tiers: the model's
    /// snapshots are deleted again. A write whose walk began before the tiers changed either finished before this (and
    /// its file goes now) or finishes after it (and sees the count move: see <see cref="WriteAll(List{string},
    /// CancellationToken)"/>).</summary>
    public void SettleUnlogged(string model) => DeleteSnapshots(model);

    /// <summary>Counts a deletion, then deletes the model's snapshots (in that order: see WriteAll).</summary>
    private void DeleteSnapshots(string model)
    {
        _deletions.AddOrUpdate(model, 1, static (_, n) => n + 1);
        foreach (var tier in new[] { TierKind.Direct, TierKind.Failover })
        {
            string path = PathOf(_options.Directory!, model, tier);
            try
            {
                File.Delete(path);
            }
            catch (Exception deleteFailed) when (deleteFailed is IOException or UnauthorizedAccessException)
            {
                Log.SnapshotFailed(_logger, "delete (a removal could not be logged)", path, deleteFailed);
            }
        }
    }

    /// <summary>Notes when the snapshots of <paramref name="state"/>'s current version on disk, the ones the load may
    /// restore, were taken (their headers alone are read). A file that cannot be read is not restored either.</summary>
    private void NoteSnapshotsOnDisk(ModelVersionState state)
    {
        var runtime = state.Current;
        foreach (var tier in new[] { runtime.Direct, runtime.Failover })
        {
            if (tier is null)
            {
                continue;
            }

            var identity = IdentityOf(runtime, tier);
            try
            {
                if (TierSnapshotFile.TakenAt(PathOf(_options.Directory!, state.Name, tier.Policy.Kind), identity) is { } takenAt)
                {
                    NoteSnapshotTaken(state.Name, takenAt);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The load meets the same error and restores nothing of this file.
            }
        }
    }

    /// <summary>What the snapshot of <paramref name="tier"/> of <paramref name="runtime"/>'s model version is taken for, and
    /// must match to be restored.</summary>
    private static SnapshotIdentity IdentityOf(ModelRuntime runtime, EmbeddingTier tier) =>
        new(runtime.Policy.Name, runtime.Policy.Version, runtime.Policy.Dimensions, tier.Policy.Format, tier.Policy.Kind);

    private void NoteSnapshotTaken(string model, long unixMs) => _newestSnapshot.AddOrUpdate(model, unixMs, (_, known) => Math.Max(known, unixMs));

    /// <summary>The model's removal log; once half full, it has the snapshots written (which shortens it), unless a
    /// write is under way or the cache is stopping.</summary>
    private RemovalLog LogOf(string model) =>
        _removalLogs.GetOrAdd(
            model,
            static (m, keeper) => new RemovalLog(
                RemovalLogPathOf(keeper._options.Directory!, m),
                halfFull: () =>
                {
                    if (!keeper._stopping.IsCancellationRequested)
                    {
                        _ = keeper.WriteAllAsync(skipIfBusy: true);
                    }
                }),
            this);

    /// <summary>A model's name made safe for any file system.</summary>
    private static string FileStem(string model)
    {
        var name = new StringBuilder();
        foreach (char c in model.ToLowerInvariant())
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : $"%{(int)c:X4}");
        }

        return name.ToString();
    }

    /// <summary>Writes every model's tiers now; one writer at a time, each bounded by <c>Snapshots:WriteTimeout</c>.
    /// With <paramref name="skipIfBusy"/> (the periodic timer) a write under way is enough; otherwise this waits for it
    /// and writes again. Never throws: a failure is logged and the previous snapshot kept.</summary>
    public async Task WriteAllAsync(bool skipIfBusy = false)
    {
        if (!await _writing.WaitAsync(skipIfBusy ? 0 : Timeout.Infinite).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(_options.WriteTimeout, _time);
            await Task.Run(() => WriteAll(timeout.Token)).ConfigureAwait(false);
        }
        finally
        {
            _writing.Release();
        }
    }

    /// <summary>The graceful stop: ends the load (what is loaded stays), stops the timer, and writes the snapshots,
    /// waiting for a periodic write under way first.</summary>
    public async Task StopAsync()
    {
        _timer?.Dispose();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Loaded.ConfigureAwait(false);
        await WriteAllAsync().ConfigureAwait(false);
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _stopping.Cancel();
        _stopping.Dispose();
        foreach (var log in _removalLogs.Values)
        {
            log.Dispose();
        }
    }

    private async Task LoadAllAsync(ModelVersionState[] states)
    {
        using var timeout = new CancellationTokenSource(_options.LoadTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _stopping.Token);
        try
        {
            if (_invalidator is { } invalidator)
            {
                // Only once other hosts' removals reach this host can a value copied in be dropped by the next one.
                await invalidator.Started.WaitAsync(linked.Token).ConfigureAwait(false);
                if (!invalidator.IsSubscribed)
                {
                    Log.SnapshotPrefetchSkipped(_logger, "every model", "the invalidation channel could not be subscribed to");
                    return;
                }
            }

            foreach (var state in states)
            {
                var runtime = state.Current;
                var removals = ReadRemovals(state.Name);
                if (_invalidator is not null)
                {
                    if (runtime.Regional is null)
                    {
                        // Other hosts' removals reach its tiers too, but there is no store to take its vectors from.
                        if (new[] { runtime.Direct, runtime.Failover }.Any(t => t is not null && File.Exists(PathOf(_options.Directory!, state.Name, t.Policy.Kind))))
                        {
                            Log.SnapshotPrefetchSkipped(_logger, $"model '{state.Name}'", "it does not use the regional store (Regional:Enabled false)");
                        }

                        continue;
                    }

                    await PrefetchAsync(state, runtime, removals, linked.Token).ConfigureAwait(false);
                    continue;
                }

                foreach (var (tier, ttl) in new[] { (runtime.Direct, runtime.DirectTtl), (runtime.Failover, runtime.FailoverTtl) })
                {
                    if (tier is not null && !state.IsRetired)
                    {
                        LoadTier(state, runtime, tier, ttl, removals, linked.Token);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Log.SnapshotLoadTimedOut(_logger, _options.LoadTimeout);
        }
        catch (OperationCanceledException)
        {
            // The cache is stopping: what is loaded stays.
        }
        finally
        {
            foreach (var state in states)
            {
                state.EndRestore();
            }
        }
    }

    /// <summary>
    /// The load beside invalidation: the users of the model's snapshots (each entry still within its tier's TTL and not
    /// dropped by the removal log) are read from the regional store and its values copied in, never the snapshots'
    /// rows.
    /// </summary>
    private async Task PrefetchAsync(ModelVersionState state, ModelRuntime runtime, RemovalRecords? removals, CancellationToken cancellationToken)
    {
        long started = Stopwatch.GetTimestamp();
        long nowUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var users = new HashSet<long>();
        foreach (var (tier, ttl) in new[] { (runtime.Direct, runtime.Policy.Direct.Ttl), (runtime.Failover, runtime.Policy.Failover.Ttl) })
        {
            string? path = tier is null ? null : PathOf(_options.Directory!, state.Name, tier.Policy.Kind);
            if (path is null || state.IsRetired || !File.Exists(path))
            {
                continue;
            }

            long ttlMs = (long)ttl.TotalMilliseconds;
            try
            {
                string? refused = TierSnapshotFile.Load(
                    path,
                    IdentityOf(runtime, tier!),
                    (user, writtenAtUnixMs, _) =>
                    {
                        if (removals?.Covers(user, writtenAtUnixMs) != true && nowUnixMs - writtenAtUnixMs < ttlMs)
                        {
                            users.Add(user);
                        }
                    },
                    cancellationToken);
                if (refused is not null)
                {
                    Log.SnapshotRejected(_logger, path, tier!.Policy.Kind, state.Name, refused);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Log.SnapshotFailed(_logger, "read", path, ex);
            }
        }

        if (users.Count == 0)
        {
            return;
        }

        var counts = await runtime.PrefetchRegionalAsync([.. users], cancellationToken).ConfigureAwait(false);
        double elapsedMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        Log.SnapshotPrefetched(_logger, state.Name, state.Version, users.Count, counts.Direct, counts.FailoverOnly, counts.Missing, counts.Unavailable, elapsedMs);
    }

    /// <summary>The model's removal log as the last process left it (null when there is none); a log that cannot be read
    /// restores nothing of the model.</summary>
    private RemovalRecords? ReadRemovals(string model)
    {
        string path = RemovalLogPathOf(_options.Directory!, model);
        try
        {
            var records = RemovalLog.Read(path);
            if (records is { IsUnreadable: true })
            {
                Log.RemovalLogFailed(_logger, "read", path, model, new InvalidDataException("The file is not a removal log."));
            }

            return records;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.RemovalLogFailed(_logger, "read", path, model, ex);
            return RemovalRecords.Unreadable;
        }
    }

    private void LoadTier(ModelVersionState state, ModelRuntime runtime, EmbeddingTier tier, long ttl, RemovalRecords? removals, CancellationToken cancellationToken)
    {
        string path = PathOf(_options.Directory!, state.Name, tier.Policy.Kind);
        if (!File.Exists(path))
        {
            return;
        }

        var identity = IdentityOf(runtime, tier);
        long started = Stopwatch.GetTimestamp();
        try
        {
            var outcome = Restore(tier, path, identity, _time, runtime.TtlNow, ttl, state.IsRemovedSinceRestoreBegan, cancellationToken, removals);
            if (outcome.Refused is { } reason)
            {
                Log.SnapshotRejected(_logger, path, tier.Policy.Kind, state.Name, reason);
                return;
            }

            double elapsedMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            Log.SnapshotLoaded(_logger, tier.Policy.Kind, state.Name, state.Version, path, outcome.Loaded, outcome.Expired, outcome.Kept, outcome.Full, outcome.Removed, elapsedMs);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SnapshotFailed(_logger, "read", path, ex);
        }
    }

    /// <summary>
    /// Restores one tier from its snapshot file: each entry younger than <paramref name="ttl"/> (by its wall-clock write
    /// time, against <paramref name="time"/>'s now) is written stamped <paramref name="ttlNow"/> minus its age, unless the
    /// tier holds a newer one or <paramref name="removed"/> says the user was removed. An entry that
    /// <paramref name="removals"/> (the removal log) covers is skipped: it was removed or superseded after it was written.
    /// Nothing is written when the file is refused.
    /// </summary>
    internal static RestoreOutcome Restore(
        EmbeddingTier tier, string path, SnapshotIdentity identity, TimeProvider time, long ttlNow, long ttl, Func<long, bool> removed,
        CancellationToken cancellationToken, RemovalRecords? removals = null)
    {
        long nowUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds();
        long frequency = time.TimestampFrequency;
        long futureMs = (long)FutureTolerance.TotalMilliseconds;
        var vector = new float[identity.Dimensions];
        long loaded = 0, expired = 0, kept = 0, full = 0, removedAfter = 0;
        string? refused = TierSnapshotFile.Load(
            path,
            identity,
            (user, writtenAtUnixMs, row) =>
            {
                if (removals?.Covers(user, writtenAtUnixMs) == true)
                {
                    removedAfter++;
                    return;
                }

                long ageMs = nowUnixMs - writtenAtUnixMs;
                long ageTicks = (long)((Int128)Math.Max(0, ageMs) * frequency / 1000);
                if (ageMs < -futureMs || ageTicks >= ttl)
                {
                    expired++;
                    return;
                }

                StorageFormats.Decode(identity.Format, row, vector);
                switch (tier.Restore(user, vector, ttlNow - ageTicks, ttl, removed))
                {
                    case RestoreResult.Restored: loaded++; break;
                    case RestoreResult.Kept: kept++; break;
                    default: full++; break;
                }
            },
            cancellationToken);
        return new RestoreOutcome(refused, loaded, expired, kept, full, removedAfter);
    }

    /// <summary>What a restore did: why the file was refused (null when it was loaded), and the entries restored, too old,
    /// kept out (a newer vector, or a removal during the load), left out of a tier full of newer entries, and removed or
    /// superseded after the snapshot (the removal log).</summary>
    internal readonly record struct RestoreOutcome(string? Refused, long Loaded, long Expired, long Kept, long Full, long Removed);

    private void WriteAll(CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        WriteAll(problems, cancellationToken);
        Volatile.Write(ref _writeProblems, problems);
    }

    private void WriteAll(List<string> problems, CancellationToken cancellationToken)
    {
        try
        {
            Directory.CreateDirectory(_options.Directory!);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SnapshotFailed(_logger, "create the directory of", _options.Directory!, ex);
            problems.Add($"the last write could not create the directory {_options.Directory} ({ex.Message}): nothing was written");
            return;
        }

        foreach (var state in _registry.States)
        {
            var runtime = state.Current;
            long modelStartedUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
            int deletions = _deletions.GetValueOrDefault(state.Name);
            bool allWritten = true;
            foreach (var tier in new[] { runtime.Direct, runtime.Failover })
            {
                if (tier is null)
                {
                    continue;
                }

                string path = PathOf(_options.Directory!, state.Name, tier.Policy.Kind);
                var identity = IdentityOf(runtime, tier);
                long nowUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
                NoteSnapshotTaken(state.Name, nowUnixMs); // before the walk: a removal during it is stamped no earlier
                long ttlNow = runtime.TtlNow;
                long frequency = _time.TimestampFrequency;
                long started = Stopwatch.GetTimestamp();
                try
                {
                    var beforeRename = BeforeRename;
                    long entries = TierSnapshotFile.Write(
                        tier, identity, path, nowUnixMs, writtenAt => nowUnixMs - (long)((Int128)(ttlNow - writtenAt) * 1000 / frequency), cancellationToken,
                        beforeRename is null ? null : () => beforeRename(path));
                    if (_deletions.GetValueOrDefault(state.Name) != deletions)
                    {
                        // A removal the log missed ran during the walk, and deleted the files before this one
                        // replaced them: this file may hold the removed user, so it goes too (a removal after this
                        // check deletes it).
                        File.Delete(path);
                        problems.Add($"the last write of {path} was deleted: a removal that could not be logged ran meanwhile");
                        allWritten = false;
                        continue;
                    }

                    double elapsedMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    long bytes = new FileInfo(path).Length;
                    Log.SnapshotWritten(_logger, tier.Policy.Kind, state.Name, state.Version, path, entries, bytes, elapsedMs);
                }
                catch (OperationCanceledException)
                {
                    Log.SnapshotWriteTimedOut(_logger, path, _options.WriteTimeout);
                    problems.Add($"the last write abandoned {path} after Snapshots:WriteTimeout {_options.WriteTimeout}, and the tiers after it");
                    return;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Log.SnapshotFailed(_logger, "write", path, ex);
                    problems.Add($"the last write of {path} failed ({ex.Message}): the previous snapshot, if any, is what a restart restores");
                    allWritten = false;
                }
            }

            if (allWritten)
            {
                DropRemovalsBefore(state.Name, modelStartedUnixMs - (long)RemovalLogMargin.TotalMilliseconds);
            }
        }
    }

    /// <summary>The model's log was written: the unlogged removal <paramref name="seenBefore"/> (read before the write)
    /// no longer matters. A failure that raced the write has another text (its count) and stays.</summary>
    private void ClearProblem(string model, string? seenBefore)
    {
        if (seenBefore is not null)
        {
            _removalLogProblems.TryRemove(KeyValuePair.Create(model, seenBefore));
        }
    }

    /// <summary>Once every tier of a model is written, its removal log keeps only what came after: a removal made
    /// before the walk began had emptied the tiers already. The margin covers the moment between a removal's record and
    /// its tiers (and the walk's own start), so no record a snapshot may still need is dropped.</summary>
    private void DropRemovalsBefore(string model, long unixMs)
    {
        string path = RemovalLogPathOf(_options.Directory!, model);
        if (!_removalLogs.TryGetValue(model, out var log) && !File.Exists(path))
        {
            return;
        }

        log ??= LogOf(model);
        string? problem = _removalLogProblems.GetValueOrDefault(model);
        try
        {
            log.DropBefore(unixMs);
            ClearProblem(model, problem); // the log is written again, beside snapshots taken after the removal
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SnapshotFailed(_logger, "shorten the removal log beside", path, ex); // the records stay: only the file's size is at stake
        }
    }
}
