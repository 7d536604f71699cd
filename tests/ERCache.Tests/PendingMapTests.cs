using ERCache.Inference;

namespace ERCache.Tests;

/// <summary>
/// The scheduler's pending map keeps one entry in fields of its own and the rest in a dictionary: whichever holds a
/// user, it must answer as one dictionary would.
/// </summary>
public sealed class PendingMapTests
{
    private static PendingInference Item(long user) => new(user, deadline: 0);

    [Fact]
    public void The_lone_entry_and_the_dictionary_answer_as_one_map()
    {
        var map = new PendingMap();
        PendingInference a = Item(1), b = Item(2), c = Item(3);

        map.Add(a); // the lone entry
        map.Add(b); // the dictionary
        map.Add(c);
        Assert.Equal(3, map.Count);
        Assert.True(map.TryGetValue(1, out var found) && ReferenceEquals(found, a));
        Assert.True(map.TryGetValue(3, out found) && ReferenceEquals(found, c));
        Assert.False(map.ContainsKey(4));

        Assert.True(map.Remove(1, out found) && ReferenceEquals(found, a)); // the lone entry is free again
        Assert.False(map.ContainsKey(1));
        map.Add(a);
        Assert.Equal(3, map.Count);
        Assert.Throws<InvalidOperationException>(() => map.Add(Item(2))); // in the dictionary
        Assert.Throws<InvalidOperationException>(() => map.Add(Item(1))); // in the fields

        Assert.Equal([a, b, c], map.TakeAll().OrderBy(i => i.UserId));
        Assert.Equal(0, map.Count);
        Assert.False(map.ContainsKey(2));
    }

    [Fact]
    public void Set_replaces_where_the_user_is_and_RemoveIfCurrent_leaves_a_newer_item_alone()
    {
        var map = new PendingMap();
        PendingInference older = Item(1), newer = Item(1), other = Item(2), otherNewer = Item(2);
        map.Set(older);
        map.Set(other); // the dictionary, beside the lone entry
        map.Remove(1, out _);
        map.Set(otherNewer); // user 2 is still in the dictionary: replaced there, not added to the fields
        map.Set(older);
        map.Set(newer);
        Assert.Equal(2, map.Count);

        map.RemoveIfCurrent(older);
        map.RemoveIfCurrent(other);
        Assert.True(map.TryGetValue(1, out var one) && ReferenceEquals(one, newer));
        Assert.True(map.TryGetValue(2, out var two) && ReferenceEquals(two, otherNewer));

        map.RemoveIfCurrent(newer);
        map.RemoveIfCurrent(otherNewer);
        Assert.Equal(0, map.Count);
    }

    [Fact]
    public void Random_operations_agree_with_a_dictionary()
    {
        var random = new Random(27);
        var map = new PendingMap();
        var oracle = new Dictionary<long, PendingInference>();
        for (int step = 0; step < 20_000; step++)
        {
            long user = random.Next(6); // few users: the lone entry is taken, freed and refilled often
            switch (random.Next(5))
            {
                case 0:
                    var item = Item(user);
                    map.Set(item);
                    oracle[user] = item;
                    break;
                case 1:
                    Assert.Equal(oracle.Remove(user, out var expected), map.Remove(user, out var removed));
                    Assert.Same(expected, removed);
                    break;
                case 2:
                    if (oracle.TryGetValue(user, out var current) && random.Next(2) == 0)
                    {
                        map.RemoveIfCurrent(current);
                        oracle.Remove(user);
                    }
                    else
                    {
                        map.RemoveIfCurrent(Item(user)); // not the current one: nothing happens
                    }

                    break;
                case 3:
                    Assert.Equal(oracle.TryGetValue(user, out var want), map.TryGetValue(user, out var got));
                    Assert.Same(want, got);
                    break;
                default:
                    if (random.Next(200) == 0)
                    {
                        Assert.Equal(oracle.Values.OrderBy(i => i.UserId), map.TakeAll().OrderBy(i => i.UserId));
                        oracle.Clear();
                    }

                    break;
            }

            Assert.Equal(oracle.Count, map.Count);
        }
    }
}
