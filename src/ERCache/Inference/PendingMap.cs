using System.Diagnostics.CodeAnalysis;

namespace ERCache.Inference;

/// <summary>
/// A scheduler's pending inferences by user (coalescing finds them here), under the scheduler's lock. One entry is
/// kept in two fields of this object, the rest in a <see cref="Dictionary{TKey, TValue}"/>.
/// </summary>
/// <remarks>Why: a lone miss is inserted by its caller's thread and removed by the thread that ran its call, so with
/// a dictionary each of them walked a chain of dependent lines the other core wrote last (the map's fields, then the
/// bucket, then the entry, and the free list's on the next insert), 0.4–0.9 µs of a miss's median when the two cores
/// are far apart by a scratch ablation. The lone entry is one line, found in one load; the dictionary is only written
/// while two or more users are pending at once. (BenchmarkDotNet's means could not resolve the gain on the noisy
/// hosts here, and found no cost: docs/benchmarks.md.)</remarks>
internal sealed class PendingMap
{
    private readonly Dictionary<long, PendingInference> _others = [];
    private PendingInference? _lone;
    private long _loneUser; // _lone's UserId, kept beside it so a lookup reads this line only, not the item's

    /// <summary>How many users are pending.</summary>
    public int Count => (_lone is null ? 0 : 1) + _others.Count;

    /// <summary>The user's pending inference, if any.</summary>
    public bool TryGetValue(long userId, [MaybeNullWhen(false)] out PendingInference item)
    {
        if (_lone is { } lone && _loneUser == userId)
        {
            item = lone;
            return true;
        }

        item = null;
        return _others.Count != 0 && _others.TryGetValue(userId, out item); // an empty map's lines are only read
    }

    /// <summary>Whether an inference is pending for the user.</summary>
    public bool ContainsKey(long userId) => TryGetValue(userId, out _);

    /// <summary>Makes <paramref name="item"/> its user's pending inference, replacing any (<see
    /// cref="PendingInference.TryJoin"/> refused the one it replaces).</summary>
    public void Set(PendingInference item)
    {
        ArgumentNullException.ThrowIfNull(item);
        long userId = item.UserId;
        if (_lone is not null && _loneUser == userId)
        {
            _lone = item;
        }
        else if (_lone is null && !_others.ContainsKey(userId))
        {
            (_lone, _loneUser) = (item, userId);
        }
        else
        {
            _others[userId] = item;
        }
    }

    /// <summary>Adds its user's pending inference; throws when one is pending already (the callers check first).</summary>
    public void Add(PendingInference item)
    {
        if (ContainsKey(item.UserId))
        {
            throw new InvalidOperationException($"An inference is already pending for user {item.UserId}.");
        }

        Set(item);
    }

    /// <summary>Removes the user's pending inference, returning it.</summary>
    public bool Remove(long userId, [MaybeNullWhen(false)] out PendingInference item)
    {
        if (_lone is { } lone && _loneUser == userId)
        {
            (item, _lone, _loneUser) = (lone, null, 0);
            return true;
        }

        item = null;
        return _others.Count != 0 && _others.Remove(userId, out item);
    }

    /// <summary>Removes <paramref name="item"/> if it is still its user's pending inference (not a newer one).</summary>
    public void RemoveIfCurrent(PendingInference item)
    {
        if (ReferenceEquals(_lone, item))
        {
            (_lone, _loneUser) = (null, 0);
        }
        else if (_others.Count != 0 && _others.TryGetValue(item.UserId, out var current) && ReferenceEquals(current, item))
        {
            _others.Remove(item.UserId);
        }
    }

    /// <summary>Removes every pending inference, returning them.</summary>
    public PendingInference[] TakeAll()
    {
        var items = new PendingInference[Count];
        int i = 0;
        if (_lone is { } lone)
        {
            items[i++] = lone;
        }

        _others.Values.CopyTo(items, i);
        (_lone, _loneUser) = (null, 0);
        _others.Clear();
        return items;
    }
}
