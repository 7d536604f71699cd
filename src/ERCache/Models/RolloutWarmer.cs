using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Storage;

namespace ERCache.Models;

/// <summary>
/// Warms a rollout's next version on the current version's spare slots (DESIGN §2 rule 10): a background batch source of
/// the current version's scheduler, whose users belong to the next version's scheduler and tiers.
/// </summary>
/// <remarks>
/// <para>Who: the users resident in the current version's failover tier (its direct tier without one) whose entry is
/// younger than that tier's TTL: the users likely to return. Order: users the next version holds no vector for, then
/// users whose next-version vector is older than half the direct TTL (re-warmed, so the switch finds them direct hits);
/// within each, the most recently inferred first. A user whose next-version vector is younger than that is skipped.</para>
/// <para>The list is rebuilt by a pass over the tier when it runs out, or when it is older than a quarter of the direct
/// TTL, at most once a second; the warm shares are measured in the same pass. The pass walks the whole tier, so it runs
/// as background work of its own on the scheduler's dispatcher, holding no delegate slot (a request must never wait for
/// it), and asks the scheduler to start warming when it is done. A timer asks the scheduler to start work once a
/// second, for when no call finishes to do it.</para>
/// </remarks>
internal sealed class RolloutWarmer : IBackgroundBatchSource, IDisposable
{
    private static readonly TimeSpan Kick = TimeSpan.FromSeconds(1);

    private readonly Lock _lock = new();
    private readonly ModelVersionState _current;
    private readonly ModelVersionState _next;
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ITimer _timer;
    private long[] _candidates = []; // under _lock
    private int _cursor; // under _lock
    private long? _lastPass; // under _lock; TTL clock, when the last pass was started
    private bool _passing; // under _lock
    private double _directShare = double.NaN, _failoverShare = double.NaN;

    public RolloutWarmer(ModelVersionState current, ModelVersionState next, TimeProvider time, ERCacheMetrics metrics)
    {
        _current = current;
        _next = next;
        _time = time;
        _metrics = metrics;
        _timer = time.CreateTimer(static s => ((RolloutWarmer)s!)._current.Scheduler.StartBackground(), this, Kick, Kick);
    }

    /// <inheritdoc />
    public int MaxConcurrency => _current.Current.Policy.RolloutMaxConcurrency;

    /// <inheritdoc />
    public InferenceScheduler Target => _next.Scheduler;

    /// <summary>The warm shares measured at the last pass (NaN before the first), for the gauge.</summary>
    public IEnumerable<Measurement<double>> WarmShares()
    {
        if (!double.IsNaN(Volatile.Read(ref _directShare)))
        {
            yield return new Measurement<double>(Volatile.Read(ref _directShare), ERCacheMetrics.TierTags(_current.Name, TierKind.Direct));
            yield return new Measurement<double>(Volatile.Read(ref _failoverShare), ERCacheMetrics.TierTags(_current.Name, TierKind.Failover));
        }
    }

    /// <inheritdoc />
    public PendingInference[] Take(int maxUsers)
    {
        var policy = _current.Current.Policy;
        if (policy.RolloutStart is { } start && _time.GetUtcNow() < start)
        {
            return [];
        }

        var next = _next.Current;
        int batch = Math.Min(maxUsers, policy.RolloutBatchSize);
        var taken = new List<PendingInference>(batch);
        bool startPass = false;
        lock (_lock)
        {
            long now = next.TtlNow;
            if (_lastPass is not { } last || _cursor >= _candidates.Length || now - last >= next.DirectTtl / 4)
            {
                // A pass a second at most; meanwhile what is left of the old list is still worth warming.
                startPass = !_passing && (_lastPass is not { } previous || now - previous >= _time.TimestampFrequency);
                if (startPass)
                {
                    _passing = true;
                    _lastPass = now;
                }
            }

            while (taken.Count < batch && _cursor < _candidates.Length)
            {
                long user = _candidates[_cursor++];
                if (next.Direct?.TryGetWrittenAt(user, now, next.DirectTtl / 2, out _) == true)
                {
                    continue; // warmed since the pass (a request, a regional hit)
                }

                if (_next.Scheduler.TryAdoptBackground(user) is { } item)
                {
                    taken.Add(item);
                }
            }
        }

        if (startPass)
        {
            _current.Scheduler.DispatchBackground(static s => ((RolloutWarmer)s!).Pass(), this);
        }

        _metrics.RecordRolloutWarming(policy.Name, taken.Count);
        return [.. taken];
    }

    /// <summary>Rebuilds the warm-up list and measures the warm shares (outside the lock: the tiers are walked entry by
    /// entry under their own), then asks the scheduler to start warming from it.</summary>
    private void Pass()
    {
        var candidates = Candidates();
        lock (_lock)
        {
            _candidates = candidates;
            _cursor = 0;
            _passing = false;
        }

        _current.Scheduler.StartBackground();
    }

    private long[] Candidates()
    {
        var current = _current.Current;
        var next = _next.Current;
        long now = next.TtlNow;
        var population = current.Failover ?? current.Direct;
        if (population is null)
        {
            return [];
        }

        long populationTtl = current.Failover is null ? current.DirectTtl : current.FailoverTtl;
        double switched = current.SwitchedShare(); // users the gradual switch reached are served, and filled, by the next version
        long rewarmAge = next.DirectTtl / 2;
        var candidates = new List<(int Group, long WrittenAt, long User)>();
        int resident = 0, direct = 0, failover = 0;
        population.ForEachEntry(
            (user, writtenAt, _) =>
            {
                if (!SlotPage.IsFresh(now, writtenAt, populationTtl) || (switched > 0 && ModelRuntime.SwitchPosition(user) < switched))
                {
                    return;
                }

                resident++;
                long nextWritten = 0;
                bool any = next.Failover?.TryGetWrittenAt(user, now, next.FailoverTtl, out nextWritten) == true ||
                    next.Direct?.TryGetWrittenAt(user, now, next.DirectTtl, out nextWritten) == true;
                if (any && now - nextWritten < next.DirectTtl)
                {
                    direct++;
                }

                failover += any ? 1 : 0;
                if (!any || now - nextWritten >= rewarmAge)
                {
                    candidates.Add((any ? 1 : 0, writtenAt, user));
                }
            },
            withRows: false);

        candidates.Sort(static (a, b) => a.Group != b.Group ? a.Group.CompareTo(b.Group) : b.WrittenAt.CompareTo(a.WrittenAt));
        Volatile.Write(ref _directShare, resident == 0 ? 1.0 : (double)direct / resident);
        Volatile.Write(ref _failoverShare, resident == 0 ? 1.0 : (double)failover / resident);
        return [.. candidates.Select(c => c.User)];
    }

    /// <summary>Stops warming: the timer, and the scheduler's source (calls in flight finish and write as usual).</summary>
    public void Dispose()
    {
        _timer.Dispose();
        _current.Scheduler.SetBackgroundSource(null);
    }
}
